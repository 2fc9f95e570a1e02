"""A text longer than the encoder's window is split into windows and their embeddings
averaged, never silently truncated."""

from __future__ import annotations

import numpy as np
import pytest

from lesionloc_runtime.tokens import SentenceTokenizer, pool_windows
from lesionloc_train.vocab import build_wordpiece_tokenizer, save_tokenizer


def _tokenizer(tmp_path, max_length: int = 12) -> SentenceTokenizer:
    corpus = ["There is a right upper lobe opacity.", "No pneumothorax.", "Left basal effusion."]
    path = save_tokenizer(build_wordpiece_tokenizer(corpus, 200), tmp_path / "tokenizer.json")
    return SentenceTokenizer(path, max_length)


def test_long_text_is_split_into_windows_that_cover_every_token(tmp_path):
    tok = _tokenizer(tmp_path)
    short = "No pneumothorax."
    long = " ".join(["There is a right upper lobe opacity."] * 5)  # 40 words + 5 periods
    batch = tok.encode([short, long])
    owners = batch.owner.tolist()
    assert owners[0] == 0 and owners.count(1) >= 4
    cls, sep = tok.tokenizer.token_to_id("[CLS]"), tok.tokenizer.token_to_id("[SEP]")
    content = []
    for row, owner in zip(batch.input_ids, owners, strict=True):
        ids = row[row != tok.pad_id].tolist()
        assert ids[0] == cls and ids[-1] == sep and len(ids) <= 12
        if owner == 1:
            content += ids[1:-1]
    from tokenizers import Tokenizer

    whole = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))  # no truncation
    assert content == whole.encode(long, add_special_tokens=False).ids
    assert batch.attention_mask.sum(axis=1).tolist() == [
        int((row != tok.pad_id).sum()) for row in batch.input_ids]


def test_window_embeddings_are_averaged_and_renormalized():
    embeddings = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    pooled = pool_windows(embeddings, np.array([0, 0, 1]), 2)
    np.testing.assert_allclose(pooled, [[2 ** -0.5, 2 ** -0.5], [2 ** -0.5, 2 ** -0.5]], rtol=1e-6)


def test_length_groups_pay_a_run_only_where_padding_costs_more():
    from lesionloc_runtime.tokens import length_groups

    # the reference report: one long finding, seven short sentences
    lengths = sorted([18, 9, 9, 5, 6, 6, 8, 7])
    assert length_groups(lengths, run_cost=12) == [(0, 7), (7, 8)]  # 7 x 9 + 12, 1 x 18 + 12
    assert length_groups(lengths, run_cost=1000) == [(0, 8)]  # runs dear: one padded batch
    assert length_groups(lengths, run_cost=0) == [(0, 1), (1, 3), (3, 4), (4, 5), (5, 7), (7, 8)]
    assert length_groups([7, 7, 7], run_cost=0) == [(0, 3)]  # equal lengths never split
    assert length_groups([], run_cost=12) == []


def test_length_groups_match_brute_force():
    import itertools

    from lesionloc_runtime.tokens import length_groups

    def cost(lengths, groups, run_cost):
        return sum((hi - lo) * lengths[hi - 1] + run_cost for lo, hi in groups)

    rng = np.random.default_rng(0)
    for _ in range(40):
        lengths = sorted(rng.integers(3, 40, size=int(rng.integers(1, 8))).tolist())
        n = len(lengths)
        best = min(cost(lengths, [(a, b) for a, b in zip((0, *cuts), (*cuts, n), strict=True)], 10)
                   for r in range(n) for cuts in itertools.combinations(range(1, n), r))
        assert cost(lengths, length_groups(lengths, 10), 10) == best


def test_batches_by_length_keep_every_window_once_trimmed_and_capped(tmp_path):
    tok = _tokenizer(tmp_path, max_length=64)
    texts = ["No pneumothorax."] * 5 + [" ".join(["There is a right upper lobe opacity."] * 5)]
    batch = tok.encode(texts)
    parts = batch.by_length(run_cost=1, max_rows=3)
    assert [p.input_ids.shape[0] for p in parts] == [3, 2, 1]
    assert parts[0].input_ids.shape[1] == parts[1].input_ids.shape[1] < parts[2].input_ids.shape[1]
    for part in parts:
        assert part.attention_mask[:, -1].any()  # trimmed: the last column is someone's token
        for ids, mask, owner in zip(part.input_ids, part.attention_mask, part.owner, strict=True):
            length = int(mask.sum())
            np.testing.assert_array_equal(ids[:length], batch.input_ids[owner, :length])
    assert sorted(np.concatenate([p.owner for p in parts]).tolist()) == batch.owner.tolist()
    assert len(batch.by_length(run_cost=10_000)) == 1


def _check_packed(run, batch) -> list[int]:
    """Every window of `run` is a window of `batch` in one row, contiguous, with positions from
    0, attention only within itself, and mean weights; padding sees only itself. Returns the
    batch's window indices in the run's order."""
    rows, width = run.input_ids.shape
    assert run.window_mask.shape == (rows, width, width)
    assert run.window_pooling.shape == (len(run.owner), rows * width)
    lengths = batch.attention_mask.sum(axis=1)
    flat_ids, flat_pos = run.input_ids.ravel(), run.position_ids.ravel()
    covered = np.zeros(rows * width, dtype=bool)
    found = []
    for k, weights in enumerate(run.window_pooling):
        tokens = np.flatnonzero(weights)
        row, first = divmod(int(tokens[0]), width)
        assert (tokens == np.arange(tokens[0], tokens[0] + len(tokens))).all()  # contiguous
        assert tokens[-1] // width == row  # within one row
        found.append(next(w for w in range(len(lengths)) if w not in found and int(lengths[w]) ==
                          len(tokens) and (batch.input_ids[w, :len(tokens)] == flat_ids[tokens])
                          .all() and batch.owner[w] == run.owner[k]))
        np.testing.assert_array_equal(flat_pos[tokens], np.arange(len(tokens)))
        np.testing.assert_allclose(weights[tokens], 1.0 / len(tokens))
        inside = np.zeros(width, dtype=bool)
        inside[first:first + len(tokens)] = True
        for t in range(first, first + len(tokens)):  # sees its window's tokens and no others
            np.testing.assert_array_equal(run.window_mask[row, t].astype(bool), inside)
        covered[tokens] = True
    for index in np.flatnonzero(~covered):  # padding sees only itself
        row, t = divmod(int(index), width)
        assert run.window_mask[row, t].sum() == 1 and run.window_mask[row, t, t] == 1
    return found


def test_a_reports_windows_are_packed_in_one_row_and_a_longer_call_runs_by_length(tmp_path):
    tok = _tokenizer(tmp_path, max_length=24)
    texts = ["No pneumothorax.", "Left basal effusion.", "There is a right upper lobe opacity.",
             " ".join(["There is a right upper lobe opacity."] * 4), "No pneumothorax."]
    batch = tok.encode(texts)
    total = int(batch.attention_mask.sum())
    (run,) = batch.packed(row_tokens=total)  # they fit: one row, no padding
    assert run.input_ids.shape == (1, total)
    assert sorted(_check_packed(run, batch)) == list(range(len(batch.owner)))
    runs = batch.packed(row_tokens=total - 1, run_cost=1, max_rows=3)  # they do not
    by_length = batch.by_length(run_cost=1, max_rows=3)
    assert len(runs) == len(by_length) > 1
    for packed, padded in zip(runs, by_length, strict=True):
        assert packed.input_ids.shape == padded.input_ids.shape  # one window a row
        np.testing.assert_array_equal(packed.owner, padded.owner)
        _check_packed(packed, batch)


def test_packed_runs_of_long_windows_keep_their_mask_small(tmp_path, monkeypatch):
    from lesionloc_runtime import tokens

    tok = _tokenizer(tmp_path, max_length=64)
    texts = [" ".join(["There is a right upper lobe opacity."] * 6)] * 5  # one long window each
    texts = [f"{text} {k}" for k, text in enumerate(texts)]
    batch = tok.encode(texts)
    width = int(batch.attention_mask.sum(axis=1).max())
    monkeypatch.setattr(tokens, "_MAX_MASK_ENTRIES", 2 * width * width)
    runs = batch.packed(row_tokens=0)
    assert [r.input_ids.shape[0] for r in runs] == [2, 2, 1]
    for run in runs:
        assert run.window_mask.size <= 2 * width * width
    assert sorted(sum((_check_packed(run, batch) for run in runs), [])) == list(range(5))


def test_first_token_pooling_picks_each_windows_first_token(tmp_path):
    tok = _tokenizer(tmp_path, max_length=24)
    batch = tok.encode(["No pneumothorax.", "Left basal effusion.", "No pneumothorax. Again."])
    (run,) = batch.packed("first")
    lengths = batch.attention_mask.sum(axis=1)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    cls = tok.tokenizer.token_to_id("[CLS]")
    for weights in run.window_pooling:
        (token,) = np.flatnonzero(weights)
        assert weights[token] == 1.0 and run.position_ids.ravel()[token] == 0
        assert run.input_ids.ravel()[token] == cls and token in starts
    assert sorted(np.flatnonzero(run.window_pooling.sum(axis=0))) == sorted(starts)
    with pytest.raises(ValueError, match="mean, sum or first"):
        batch.packed("max")
