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
    assert batch.sentence_finding[0].tolist() == [True, False, False, False]


def test_batch_marks_findings_and_gives_equal_sentences_one_group():
    def tokenizer(texts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.ones((len(texts), 3), dtype=torch.long), torch.ones((len(texts), 3),
                                                                       dtype=torch.long)

    reports = [parse_report("FINDINGS: The heart is enlarged. No pneumothorax."),
               parse_report("FINDINGS: There is a right lower zone nodule. The heart is  enlarged."),
               parse_report("FINDINGS: No pneumothorax.")]
    collator = Collator(tokenizer, LossConfig().local_kinds, max_sentences=3, max_length=16,
                        report_max_length=64)
    batch = collator([Example(i, np.zeros((1, 8, 8), np.float32), r) for i, r in enumerate(reports)])
    assert batch.sentence_finding.tolist() == [[True, False, False], [True, True, False],
                                               [False, False, False]]
    group = batch.sentence_group.tolist()
    assert group[0][0] == group[1][1]  # the same sentence, spacing aside
    assert group[0][1] == group[2][0]
    assert len({group[0][0], group[0][1], group[1][0]}) == 3
    assert group[0][2] == group[1][2] == group[2][1] == -1


def test_local_kinds_may_name_other_but_nothing_unknown():
    assert "other" not in LossConfig().local_kinds
    assert LossConfig(local_kinds=("finding", "other")).local_kinds == ("finding", "other")
    with pytest.raises(ConfigError, match="unknown kinds"):
        LossConfig(local_kinds=("finding", "impression"))
