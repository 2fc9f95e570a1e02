"""The sentence-embedding cache: repeated sentences skip the text encoder, the cache stays
within its bound, what it returns is what the encoder gave, and a batch's worker processes
share what they encode through one store."""

from __future__ import annotations

from multiprocessing import get_context

import numpy as np
import pytest

from lesionloc_runtime.localizer import Localizer
from lesionloc_runtime.sentence_cache import SentenceCache, SharedSentences, start_shared_store


def _counting(localizer: Localizer) -> list[int]:
    """Token windows the text encoder ran (packed or a row each), one entry per run."""
    runs: list[int] = []
    real = localizer.text_encoder.run
    localizer.text_encoder.run = lambda feeds: runs.append(
        len(feeds.get("window_pooling", feeds["input_ids"]))) or real(feeds)
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


def test_localizers_sharing_a_store_encode_a_sentence_once(tiny_bundle_factory):
    bundle = tiny_bundle_factory("none")
    store = SharedSentences()
    first, second = Localizer.load(bundle), Localizer.load(bundle)
    first.sentence_cache.shared = second.sentence_cache.shared = store
    texts = ["Small right pleural effusion.", "No pneumothorax."]
    runs = _counting(second)
    local, glob = first.encode_texts(texts)
    theirs = second.encode_texts([*texts, "The heart is enlarged."])
    assert runs == [1] and store.size() == 3  # only the sentence the first had not met ran
    np.testing.assert_array_equal(theirs[0][:2], local)
    np.testing.assert_array_equal(theirs[1][:2], glob)
    cache = second.sentence_cache
    assert (cache.hits, cache.misses, cache.shared_hits) == (2, 1, 2)
    store.get_many = None  # what came from the store is kept in the process: not asked again
    second.encode_texts(texts)
    assert cache.hits == 4 and runs == [1]


def test_the_first_embedding_of_a_sentence_stays_in_the_store():
    store = SharedSentences(2)
    store.put_many([(("a",), np.ones(2), np.ones(2))])
    store.put_many([(("a",), np.zeros(2), np.zeros(2)), (("b",), np.ones(2), np.ones(2)),
                    (("c",), np.ones(2), np.ones(2))])
    found = store.get_many([("a",), ("b",), ("c",)])
    assert found[0] is None and found[1] is not None and store.size() == 2  # bounded, LRU


def _put_from_another_process(store) -> None:
    row = np.full(4, 7, np.float32)
    SentenceCache(8, shared=store).put(("No pneumothorax.",), row, row)


def test_the_store_serves_worker_processes():
    context = get_context("spawn")  # as the batch's workers are started
    manager, store = start_shared_store(8, context)
    try:
        child = context.Process(target=_put_from_another_process, args=(store,))
        child.start()
        child.join(60)
        assert child.exitcode == 0
        found = SentenceCache(8, shared=store).get(("No pneumothorax.",))
        assert found is not None and found.local.tolist() == [7.0] * 4
    finally:
        manager.shutdown()


def test_a_worker_goes_on_with_its_own_cache_when_the_store_is_gone(caplog):
    manager, store = start_shared_store(8, get_context("spawn"))
    cache = SentenceCache(8, shared=store)
    row = np.ones(4, np.float32)
    cache.put(("a",), row, row)
    manager.shutdown()
    assert cache.get(("b",)) is None and cache.shared is None
    assert "stopped answering" in caplog.text
    cache.put(("b",), row, row)  # no store to tell: kept here
    assert cache.get(("a",)) is not None and cache.get(("b",)) is not None


def test_the_next_studies_sentences_are_encoded_together_each_counted_for_its_first_study(
        tiny_bundle_factory):
    """`encode_ahead` encodes what the cache lacks of several studies in one call; each study
    then finds all of its sentences cached, with the embeddings a lone call gives (fp32), and
    a text of several studies counts as encoded for the first of them only."""
    bundle = tiny_bundle_factory("none")
    localizer = Localizer.load(bundle)
    known = "No pneumothorax."
    localizer.encode_texts([known])
    runs = _counting(localizer)
    studies = [[known, "Small right pleural effusion."],
               ["Small right pleural effusion.", "The heart is enlarged.", "The heart is enlarged."],
               [],
               ["Right basal atelectasis.", known]]
    assert localizer.encode_ahead(studies) == [1, 1, 0, 1]
    assert sum(runs) == 3  # the three new texts, once each, in one call
    alone = Localizer.load(bundle, sentence_cache=0)
    for texts in studies[:2] + studies[3:]:
        ours, theirs = localizer.encode_texts(texts), alone.encode_texts(texts)
        np.testing.assert_allclose(ours[0], theirs[0], atol=2e-5)
        np.testing.assert_allclose(ours[1], theirs[1], atol=2e-5)
    assert sum(runs) == 3  # every study found its sentences


def test_nothing_is_encoded_ahead_without_a_cache_or_beyond_half_of_it(tiny_bundle_factory):
    texts = [["Small right pleural effusion.", "No pneumothorax."], ["The heart is enlarged."]]
    for entries in (0, 5):  # no cache; three texts would fill more than half of five entries
        localizer = Localizer.load(tiny_bundle_factory("none"), sentence_cache=entries)
        runs = _counting(localizer)
        assert localizer.encode_ahead(texts) == [0, 0] and runs == []
    localizer = Localizer.load(tiny_bundle_factory("none"), sentence_cache=6)
    assert localizer.encode_ahead(texts) == [2, 1]


def test_threads_sharing_a_cache_never_see_an_entry_vanish_midway():
    """A Localizer shared by a service's threads shares its cache: one thread's eviction
    between another's lookup and its move to the end raised KeyError (80 of 240,000 calls
    of six threads on a cache of three, before the lock)."""
    import sys
    import threading

    from lesionloc_runtime.sentence_cache import SentenceCache

    cache = SentenceCache(3)
    vector = np.zeros(4, np.float32)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        for i in range(5000):
            k = (t * 7 + i) % 6
            try:
                cache.get_many([k, k + 1])
                cache.put_many([(k, vector, vector), (k + 2, vector, vector)])
            except BaseException as exc:  # any failure of a thread counts
                errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch as often as they can
    try:
        threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == [] and len(cache) <= 3
    assert cache.hits + cache.misses == 6 * 5000 * 2
