"""The one box type: predicted boxes (heatmap, study JSON, SR) and ground-truth boxes (the
benchmark readers) are the same class with the same pixel conventions."""

from __future__ import annotations

import pytest

from lesionloc_runtime import heatmap, metrics
from lesionloc_runtime.boxes import Box, xywh
from lesionloc_runtime.evaluation.records import parse_box


def test_predicted_and_ground_truth_boxes_are_one_type() -> None:
    assert heatmap.Box is Box
    truth = parse_box(["1.5", 2, "3", 4.25])
    assert truth == Box(1.5, 2.0, 3.0, 4.25) and truth.score is None


def test_box_rescales_keeps_its_score_and_rounds_for_json() -> None:
    box = Box(10.04, 20.0, 30.0, 40.06, score=0.5)
    assert box.scaled(0.5, 2.0) == Box(5.02, 40.0, 15.0, 80.12, score=0.5)
    assert box.as_list() == [10.0, 20.0, 30.0, 40.1]
    assert xywh(box) == xywh([10.04, 20, 30, 40.06]) == (10.04, 20.0, 30.0, 40.06)


@pytest.mark.parametrize("box, outside", [
    (Box(-5, 0, 5, 5), True),     # ends exactly at the left edge
    (Box(-5, 0, 5.5, 5), False),  # half a pixel on the image
    (Box(10, 0, 3, 3), True),     # starts at the right edge of a 10 px wide image
    (Box(2, 9.9, 3, 3), False),
])
def test_box_lies_outside_only_when_no_part_is_on_the_image(box: Box, outside: bool) -> None:
    assert box.lies_outside(10, 10) is outside


def test_boxes_to_mask_takes_boxes_and_plain_lists_alike() -> None:
    assert (metrics.boxes_to_mask([Box(1, 1, 2, 2)], 4, 4)
            == metrics.boxes_to_mask([[1, 1, 2, 2]], 4, 4)).all()
