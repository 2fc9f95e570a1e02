"""Report kinds in training: phantom reports parse to the kinds they were written with,
"other" sentences stay out of the local loss unless asked for, and findings enter it as
their grounded part, as the runtime encodes them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lesionloc_runtime.errors import ConfigError
from lesionloc_runtime.text import parse_report, read_report
from lesionloc_train.config import LossConfig
from lesionloc_train.data import Collator, Example


def test_phantom_reports_parse_to_the_kinds_they_were_written_with(phantom_set):
    rows = [json.loads(line) for line in phantom_set.read_text().splitlines()]
    checked = 0
    for row in rows:
        parsed = {" ".join(s.raw.split()): s.kind
                  for s in read_report(phantom_set.parent / row["report"]).sentences}
        for sentence in row["sentences"]:
            assert parsed[" ".join(sentence["text"].split())] == sentence["kind"], sentence
            checked += 1
    assert checked > 50


def test_local_loss_takes_findings_as_their_grounded_part_and_leaves_other_out():
    tokenized: list[list[str]] = []

    def tokenizer(texts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        tokenized.append(list(texts))
        return torch.ones((len(texts), 3), dtype=torch.long), torch.ones((len(texts), 3),
                                                                       dtype=torch.long)

    report = parse_report("FINDINGS: PA and lateral views of the chest. No pneumothorax, but a "
                          "small left effusion persists. The heart size is normal.")
    collator = Collator(tokenizer, LossConfig().local_kinds, max_sentences=4, max_length=16,
                        report_max_length=64)
    batch = collator([Example(0, np.zeros((1, 8, 8), np.float32), report)])
    assert tokenized == [[report.body],
                         ["a small left effusion persists.", "The heart size is normal."]]
    assert batch.sentence_valid[0].tolist() == [True, True, False, False]


def test_local_kinds_may_name_other_but_nothing_unknown():
    assert "other" not in LossConfig().local_kinds
    assert LossConfig(local_kinds=("finding", "other")).local_kinds == ("finding", "other")
    with pytest.raises(ConfigError, match="unknown kinds"):
        LossConfig(local_kinds=("finding", "impression"))
