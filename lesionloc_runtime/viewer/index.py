"""The batch index, `OUT/index.html`: one row per finished study in OUT (searchable by text,
filterable by sentence kind and score, each row opening the study's page), rewritten as a
batch finishes studies. A study is listed exactly when `outputs.done_document` says it is done,
so the index agrees with what a resumed batch skips."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lesionloc_runtime.fileio import atomic_write_text
from lesionloc_runtime.viewer.page import page_template, script_json

__all__ = [
    "INDEX_HTML",
    "REWRITE_SECONDS",
    "REWRITE_SHARE",
    "BatchIndex",
    "index_page",
    "index_row",
    "scan",
]

INDEX_HTML = "index.html"
# Rewriting the index costs time proportional to the rows: between studies it is rewritten at
# most this often, and never spends more than 1/REWRITE_SHARE of the batch's time.
REWRITE_SECONDS = 2.0
REWRITE_SHARE = 20


def index_row(doc: dict[str, Any]) -> dict[str, Any]:
    """What the index shows of a study document: its id, model, size and every sentence (kind,
    score, text, flags), compact because a batch may have many thousands of studies."""
    model = doc.get("model") or {}
    sentences = []
    for s in doc.get("sentences", []):
        row = {"k": s.get("kind"), "s": s.get("score"), "t": s.get("text", "")}
        if s.get("section") == "query":
            row["q"] = 1
        if s.get("uncertain"):
            row["u"] = 1
        if s.get("grounded"):
            row["g"] = 1
        sentences.append(row)
    return {"id": doc["study_id"], "model": model.get("name"), "demo": bool(model.get("demo")),
            "notice": doc.get("notice", ""),
            "size": [doc["input"].get("width"), doc["input"].get("height")],
            "sentences": sentences}


def scan(out: Path) -> dict[str, dict[str, Any]]:
    """Index rows of every finished study in `out` (this batch's, an earlier one's, another
    shard's), by study id."""
    from lesionloc_runtime.outputs import done_document, study_id_problem

    rows: dict[str, dict[str, Any]] = {}
    try:
        folders = sorted(entry.name for entry in out.iterdir() if entry.is_dir())
    except OSError:  # no OUT yet: nothing is done
        return rows
    for name in folders:
        if study_id_problem(name) is None and (doc := done_document(out, name)) is not None:
            rows[name] = index_row(doc)
    return rows


def index_page(rows: Iterable[dict[str, Any]]) -> str:
    head, tail = page_template("index")
    ordered = sorted(rows, key=lambda row: row["id"])
    return head + script_json({"studies": ordered}) + tail


class BatchIndex:
    """OUT/index.html kept up to date by a running batch: `rows` starts from what OUT holds,
    `add` records each study as it finishes, and the page is rewritten at most every
    REWRITE_SECONDS (and never for more than 1/REWRITE_SHARE of the time) and by `write`."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.rows = scan(out)
        self._written_at = 0.0
        self._cost = 0.0

    def add(self, row: dict[str, Any]) -> None:
        self.rows[row["id"]] = row
        now = time.monotonic()
        if now - self._written_at >= max(REWRITE_SECONDS, REWRITE_SHARE * self._cost):
            try:
                self.write()
            except OSError:  # the next write, or the last (which raises), tries again
                pass

    def rescan(self) -> None:
        """Read OUT again: the studies other shards (or other workers) finished meanwhile."""
        self.rows = scan(self.out)

    def write(self) -> Path:
        """Write the page (OSError if it cannot be)."""
        start = time.monotonic()
        target = self.out / INDEX_HTML
        atomic_write_text(target, index_page(self.rows.values()), durable=False)
        self._written_at = time.monotonic()
        self._cost = self._written_at - start
        return target
