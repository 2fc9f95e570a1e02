"""Report assertion in the runtime: a finding is encoded as its grounded part, sentences with
nothing to localize get no heatmap, and study.json says which span was grounded and whether
the finding was hedged."""

from __future__ import annotations

import numpy as np

from lesionloc_runtime.imageio import Radiograph
from lesionloc_runtime.localizer import Localizer
from lesionloc_runtime.text import parse_report

REPORT = ("FINDINGS: No pneumothorax, but a small left effusion persists. Possible right basal "
          "opacity. PA and lateral views of the chest. No pleural effusion.")


def test_findings_are_encoded_as_their_grounded_part_and_the_json_says_which(tiny_bundle):
    localizer = Localizer.load(tiny_bundle)
    encoded: list[list[str]] = []
    encode = localizer.encode_texts
    localizer.encode_texts = lambda texts: encoded.append(list(texts)) or encode(texts)
    image = Radiograph.from_array(np.random.default_rng(0).random((200, 240)).astype(np.float32))
    result = localizer.localize(image, parse_report(REPORT), queries=["left apical nodule"])
    assert encoded == [["a small left effusion persists.", "Possible right basal opacity.",
                        "PA and lateral views of the chest.", "No pleural effusion.",
                        "left apical nodule"]]
    mixed, hedged, exam, negated, query = result.to_dict()["sentences"]
    assert mixed["text"] == "No pneumothorax, but a small left effusion persists."
    assert mixed["grounded_span"] == {"start": 21, "end": 52,
                                      "text": "a small left effusion persists."}
    assert (mixed["kind"], mixed["uncertain"], mixed["grounded"]) == ("finding", False, True)
    assert (hedged["kind"], hedged["uncertain"], hedged["grounded"]) == ("finding", True, True)
    assert hedged["grounded_span"]["text"] == hedged["text"]
    assert (exam["kind"], exam["grounded"], exam["grounded_span"]) == ("other", False, None)
    assert (negated["kind"], negated["grounded"], negated["grounded_span"]) == (
        "negated", False, None)
    assert query["grounded_span"] == {"start": 0, "end": 18, "text": "left apical nodule"}
