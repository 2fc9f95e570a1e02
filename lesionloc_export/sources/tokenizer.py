"""`tokenizer.json` from a published model's own WordPiece vocabulary and casing, so the
runtime tokenizes exactly as the model's BertTokenizer did, with `tokenizers` alone."""

from __future__ import annotations

import json
from pathlib import Path

from lesionloc_runtime.errors import CheckpointError

VOCAB_FILE = "vocab.txt"


def lower_case(snapshot: Path) -> bool:
    """The snapshot's casing: tokenizer_config.json's do_lower_case, else BertTokenizer's
    default (lower case), which is what AutoTokenizer gave a snapshot without that file."""
    config = snapshot / "tokenizer_config.json"
    if not config.is_file():
        return True
    try:
        value = json.loads(config.read_text(encoding="utf-8")).get("do_lower_case", True)
    except (ValueError, AttributeError) as exc:
        raise CheckpointError(f"{config}: not a tokenizer configuration ({exc})") from None
    return bool(value)


def bert_tokenizer_json(snapshot: Path, out: Path, what: str) -> Path:
    """Write `out` (tokenizer.json) from `snapshot`'s vocab.txt: BERT normalization with the
    snapshot's casing (accents stripped when lower-casing, as BertTokenizer does), BERT
    pre-tokenization, WordPiece with ## continuations, [CLS] ... [SEP]."""
    from tokenizers import BertWordPieceTokenizer

    vocab = snapshot / VOCAB_FILE
    if not vocab.is_file():
        raise CheckpointError(f"{vocab}: {what} vocabulary not found")
    words = vocab.read_text(encoding="utf-8").splitlines()
    missing = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]") if t not in words]
    if missing:
        raise CheckpointError(f"{vocab}: not a BERT vocabulary (no {', '.join(missing)})")
    tokenizer = BertWordPieceTokenizer(str(vocab), clean_text=True, handle_chinese_chars=True,
                                       strip_accents=None, lowercase=lower_case(snapshot))
    tokenizer.save(str(out))
    return out
