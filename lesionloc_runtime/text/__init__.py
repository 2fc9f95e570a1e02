"""Radiology report understanding, the one implementation used by training and the runtime:
decoding report files, sections, sentence splitting with exact offsets, and the assertion of
each sentence (finding, negated, normal or other). docs/reports.md describes the rules."""

from lesionloc_runtime.text.assertion import Assertion, assess, classify_sentence
from lesionloc_runtime.text.decoding import clean_text, decode_report
from lesionloc_runtime.text.parse import parse_report, query_sentences, read_report
from lesionloc_runtime.text.records import (
    MAX_REPORT_BYTES,
    SENTENCE_KINDS,
    Report,
    Sentence,
    SentenceKind,
)

__all__ = [
    "MAX_REPORT_BYTES",
    "SENTENCE_KINDS",
    "Assertion",
    "assess",
    "Report",
    "Sentence",
    "SentenceKind",
    "classify_sentence",
    "clean_text",
    "decode_report",
    "parse_report",
    "query_sentences",
    "read_report",
]
