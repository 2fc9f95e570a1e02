"""Typing errors in the words that decide a sentence's kind ("The lungs are clera.", "Cannot
exlcude a small effusion."): a word one edit away from a cue word is read as that word. Text
read from paper by OCR also splits words ("Pneu monia can not be ex cluded.") and reads an "l"
as a "1" ("No 1arge effusion."): two pieces that make a cue word, and a word that is known
once its "1" or "0" is a letter, are read as that word."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

__all__ = [
    "CUE_WORDS",
    "correct",
    "correction",
]

# The words whose misspelling would change a kind, a hedge or a negation's object. Finding words
# need no entry when their stem already matches (the finding lexicon matches "cardiomegally").
CUE_WORDS = frozenset("""
clear normal normally unremarkable intact preserved midline symmetric within limits
appearance appearances cardiopulmonary cardiomediastinal mediastinal mediastinum silhouette
comparison compared exclude excluded possible possibly probable probably suspicious suspected
questionable represent evidence abnormality abnormalities acute process stable unchanged
visualized identified pneumothorax pneumonia effusion effusions consolidation atelectasis
opacity opacities nodule nodules infiltrate infiltrates edema pleural interstitial granuloma
calcified tortuous endotracheal bibasilar bilateral fracture fractures cardiomegaly emphysema
osseous structures negative without resolved removed right left large small
""".split())

# The longest cue word has 17 letters: a longer word is no typing error of one.
_TOKEN = re.compile(r"\b[a-z]{5,18}\b")


# Two pieces of one word, split by OCR: "cl ear", "pneu monia".
_PIECES = re.compile(r"\b([a-z]{1,14}) ([a-z]{1,14})\b")
# A letter read as a digit at a word's start: "1arge", "0paque".
_DIGIT_LETTER = re.compile(r"\b[01][a-z]{3,}\b")

_SUFFIX = re.compile(r"(?:ing|ed|es|s|d|ly)\Z")


def _stem(word: str) -> str:
    """Without an inflection: "remove", "removes" and "removed" are three words, not a typing error."""
    return _SUFFIX.sub("", word).removesuffix("e")


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def _index() -> dict[str, set[str]]:
    """Each cue word and each of its one-letter deletions -> the cue words they come from."""
    index: dict[str, set[str]] = {}
    for word in CUE_WORDS:
        for key in _deletes(word) | {word}:
            index.setdefault(key, set()).add(word)
    return index


_INDEX = _index()


def _one_edit(a: str, b: str) -> bool:
    """Damerau-Levenshtein distance 1: one substitution, transposition, insertion or deletion."""
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (
            len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        )
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return len(long) == len(short) + 1 and any(
        long[:i] + long[i + 1 :] == short for i in range(len(long))
    )


@lru_cache(maxsize=8192)
def correction(token: str) -> str | None:
    """The cue word `token` is a typing error of, or None. The first letter must agree (people
    rarely mistype it, and "formal" is no "normal"), and only words of seven letters or more
    may lose or gain one ("clears" stays, "osseus" is "osseous"); another inflection of a cue
    word is no error ("removes"); with two candidates there is no guess."""
    found = {w for key in _deletes(token) | {token} for w in _INDEX.get(key, ())}
    found = {
        w for w in found
        if w != token and w[0] == token[0] and _stem(w) != _stem(token) and _one_edit(w, token)
        and (len(w) == len(token) or max(len(w), len(token)) >= 7)
    }
    return found.pop() if len(found) == 1 else None


def _joins(low: str, known: Callable[[str], bool]) -> list[tuple[int, int, str]]:
    """(start, end, word) for each pair of pieces that together make a cue word, unless both
    are words of their own ("can not" stays two)."""
    out = []
    pos = 0
    while m := _PIECES.search(low, pos):
        a, b = m.groups()
        if a + b in CUE_WORDS and not (known(a) and known(b)):
            out.append((m.start(), m.end(), a + b))
            pos = m.end()
        else:
            pos = m.start(2)
    return out


def correct(
    low: str, index: list[int] | None, known: Callable[[str], bool]
) -> tuple[str, list[int] | None]:
    """`low` with its misspelt cue words replaced, and the offset in the original text of each
    character (`index`; None: the same offsets). Words `known` are never changed."""
    fixes = _joins(low, known)
    for m in _DIGIT_LETTER.finditer(low):
        word = {"1": "l", "0": "o"}[m.group()[0]] + m.group()[1:]
        if word in CUE_WORDS or known(word):
            fixes.append((m.start(), m.end(), word))
    taken = {i for start, end, _ in fixes for i in range(start, end)}
    for m in _TOKEN.finditer(low):
        token = m.group()
        if token not in CUE_WORDS and not known(token) and m.start() not in taken:
            fixed = correction(token)
            if fixed is not None:
                fixes.append((m.start(), m.end(), fixed))
    if not fixes:
        return low, index
    fixes.sort()
    offsets = range(len(low)) if index is None else index
    pieces: list[str] = []
    shifted: list[int] = []
    pos = 0
    for start, end, fixed in fixes:
        pieces += [low[pos:start], fixed]
        shifted.extend(offsets[pos:start])
        # The fixed word's characters map onto the misspelt word's, its last onto the last.
        shifted.extend(offsets[min(start + i, end - 1)] for i in range(len(fixed) - 1))
        shifted.append(offsets[end - 1])
        pos = end
    pieces.append(low[pos:])
    shifted.extend(offsets[pos:])
    return "".join(pieces), shifted
