"""A text longer than the encoder's window is split into windows and their embeddings
averaged, never silently truncated."""

from __future__ import annotations

import numpy as np

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
