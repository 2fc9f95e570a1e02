"""Which projection a DICOM header says the image is: a lateral view gets a note (shown as a
warning and kept in study.json), since every model here was trained on frontal views."""

from __future__ import annotations

import re
from typing import Any

from lesionloc_runtime.imageio.header import header_value, shown_value

__all__ = ["lateral_view_notes"]

# ViewPosition values of a lateral chest view: LL and RL are DICOM's defined terms; MIMIC-CXR
# and some modalities write LATERAL or LAT. LLD/RLD (decubitus) are frontal projections.
_LATERAL_VIEW_POSITIONS = frozenset({"LL", "RL", "LATERAL", "LAT"})
# Free-text elements that describe this image's series or protocol. StudyDescription is left
# out: "CHEST PA AND LAT" describes the whole study, frontal image included.
_DESCRIPTIONS = ("SeriesDescription", "ProtocolName")
_LATERAL_WORDS = re.compile(r"\b(?:lat|lateral)\b")
# A description that also names a frontal, decubitus or oblique projection is not evidence of
# a lateral image ("PA + LAT" series, "left lateral decubitus").
_OTHER_VIEW_WORDS = re.compile(r"\b(?:pa|ap|p a|a p|frontal|decub|decubitus|obl|oblique|"
                               r"medio|latero)\b")

_LATERAL_NOTE = "the model was trained on frontal (PA/AP) views, so its heatmaps here are not reliable"


def lateral_view_notes(ds: Any) -> list[str]:
    """One note if the header says the image is a lateral view, naming where it says so;
    none otherwise (no header element, or a frontal or unknown view)."""
    evidence = _lateral_evidence(ds)
    return [f"lateral view ({evidence}): {_LATERAL_NOTE}"] if evidence else []


def _lateral_evidence(ds: Any) -> str | None:
    position = str(header_value(ds, "ViewPosition") or "").strip().upper()
    if position in _LATERAL_VIEW_POSITIONS:
        return f"ViewPosition {shown_value(position)}"
    meaning = _view_code_meaning(ds)
    if meaning and _says_lateral(meaning):
        return f"ViewCodeSequence {shown_value(meaning)}"
    for keyword in _DESCRIPTIONS:
        text = header_value(ds, keyword)
        # Free text is not quoted: it may hold anything, identifiers included.
        if isinstance(text, str) and _says_lateral(text):
            return f"its {keyword} says so"
    return None


def _view_code_meaning(ds: Any) -> str:
    """The CodeMeaning of the first ViewCodeSequence item, or "" if absent or unreadable."""
    items = header_value(ds, "ViewCodeSequence")
    try:
        return str(header_value(items[0], "CodeMeaning") or "") if items else ""
    except Exception:  # a damaged sequence: no evidence either way
        return ""


def _says_lateral(text: str) -> bool:
    words = re.sub(r"[^a-z0-9]+", " ", text.lower())
    return bool(_LATERAL_WORDS.search(words)) and not _OTHER_VIEW_WORDS.search(words)
