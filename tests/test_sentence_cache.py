"""The sentence-embedding cache: repeated sentences skip the text encoder, the cache stays
within its bound, and what it returns is what the encoder gave."""

from __future__ import annotations

import numpy as np
import pytest

from lesionloc_runtime.localizer import Localizer
from lesionloc_runtime.sentence_cache import SentenceCache


def _counting(localizer: Localizer) -> list[int]:
    """Rows the text encoder ran, one entry per run."""
    runs: list[int] = []
    real = localizer.text_encoder.run
    localizer.text_encoder.run = lambda feeds: runs.append(len(feeds["input_ids"])) or real(feeds)
    return runs


def test_a_sentence_met_again_is_not_encoded_again(tiny_bundle_factory):
    localizer = Localizer.load(tiny_bundle_factory("none"))
    runs = _counting(localizer)
    first = localizer.encode_texts(["Small right pleural effusion.", "No pneumothorax."])
    again = localizer.encode_texts(["No pneumothorax.", "Small right pleural effusion."])
    assert runs == [2]
    np.testing.assert_array_equal(again[0], first[0][::-1])
    np.testing.assert_array_equal(again[1], first[1][::-1])
    localizer.encode_texts(["No pneumothorax.", "The heart is enlarged."])
    assert runs == [2, 1]  # only the new sentence ran
    assert localizer.sentence_cache.hits == 3 and len(localizer.sentence_cache) == 3


def test_cached_embeddings_equal_fresh_ones_in_fp32(tiny_bundle_factory):
    cached = Localizer.load(tiny_bundle_factory("none"))
    fresh = Localizer.load(tiny_bundle_factory("none"), sentence_cache=0)
    texts = ["There is a right upper lobe opacity.", "No pleural effusion."]
    cached.encode_texts(texts[::-1] + ["The heart is enlarged."])  # fills the cache
    for ours, theirs in zip(cached.encode_texts(texts), fresh.encode_texts(texts), strict=True):
        np.testing.assert_allclose(ours, theirs, atol=2e-5)


def test_repeats_within_one_call_run_once_even_without_a_cache(tiny_bundle_factory):
    localizer = Localizer.load(tiny_bundle_factory("none"), sentence_cache=0)
    runs = _counting(localizer)
    local, glob = localizer.encode_texts(["No pneumothorax."] * 4 + ["Right basal atelectasis."])
    assert runs == [2] and local.shape[0] == glob.shape[0] == 5
    assert np.array_equal(local[0], local[3]) and len(localizer.sentence_cache) == 0
    localizer.encode_texts(["No pneumothorax."])
    assert runs == [2, 1]


def test_the_cache_keeps_the_most_recently_used_entries_within_its_bound():
    cache = SentenceCache(2)
    row = np.ones(4, np.float32)
    cache.put(("a",), row, row)
    cache.put(("b",), row * 2, row * 2)
    assert cache.get(("a",)) is not None  # "a" is now the most recent
    cache.put(("c",), row * 3, row * 3)
    assert len(cache) == 2 and cache.get(("b",)) is None
    assert cache.get(("c",)).local[0] == 3 and cache.get(("a",)) is not None
    with pytest.raises(ValueError):
        SentenceCache(-1)


def test_the_key_is_the_tokenized_text(tiny_bundle_factory):
    # BERT's pre-tokenizer splits on any whitespace: two spellings, one token sequence
    localizer = Localizer.load(tiny_bundle_factory("none"))
    runs = _counting(localizer)
    spaced = "No   pneumothorax .\n"
    windows = localizer.tokenizer.windows(["No pneumothorax.", spaced])
    assert windows[0] == windows[1]
    localizer.encode_texts(["No pneumothorax."])
    localizer.encode_texts([spaced])
    assert runs == [1]


def test_run_refuses_a_negative_cache_size(tmp_path, phantom_study):
    import subprocess
    import sys
    from pathlib import Path

    image, report, _ = phantom_study
    proc = subprocess.run([str(Path(sys.executable).parent / "lesionloc-run"), str(image),
                           "--report", str(report), "--sentence-cache", "-1",
                           "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error: --sentence-cache -1")
