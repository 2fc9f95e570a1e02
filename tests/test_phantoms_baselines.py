"""Model-free baselines on phantoms: heatmap shapes, the text prior, and no brightness shortcut."""

from __future__ import annotations

import numpy as np
import pytest

from lesionloc_runtime.errors import DataError
from lesionloc_runtime.evaluation.baselines import (
    BASELINES,
    TextPrior,
    brightest_region_heatmap,
    centre_prior_heatmap,
    evaluate_baselines,
    format_table,
    parse_sentence,
    random_heatmap,
)
from lesionloc_runtime.metrics import METRIC_NAMES
from lesionloc_train.phantoms import generate_dataset, load_manifest


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    out = tmp_path_factory.mktemp("baselines")
    generate_dataset(out, 48, seed=5, width=224, height=224, split_fractions=(0.5, 0.0, 0.5),
                     workers=1)
    return out


@pytest.mark.parametrize("text,expected", [
    ("A 7 mm nodule projects over the right upper lobe.", ("nodule", "right", "upper")),
    ("Small bilateral pleural effusions.", ("effusion", "bilateral", None)),
    ("Patchy opacity in the lingula.", ("consolidation", "left", "lingula")),
    ("There is a moderate left apical pneumothorax.", ("pneumothorax", "left", "apical")),
    ("Bilateral basilar atelectasis.", ("atelectasis", "bilateral", "basal")),
    ("The heart is mildly enlarged.", ("cardiomegaly", None, None)),
    ("Left perihilar mass, concerning for malignancy.", ("mass", "left", "perihilar")),
])
def test_parse_sentence_reads_finding_side_and_zone(text, expected):
    assert parse_sentence(text) == expected


def test_heatmaps_lie_on_the_image_grid():
    rng = np.random.default_rng(0)
    assert random_heatmap(120, 90, rng).shape == (120, 90)
    prior = centre_prior_heatmap(120, 90)
    assert prior.shape == (120, 90)
    assert prior[54, 29] > prior[5, 45], "the prior peaks over a lung, not the neck"
    image = np.zeros((120, 90), dtype=np.float32)
    image[20:100, 10:80] = 0.5
    image[60:70, 40:50] = 1.0
    heat = brightest_region_heatmap(image)
    assert heat.shape == (120, 90)
    assert np.unravel_index(np.argmax(heat), heat.shape) in [(y, x) for y in range(55, 75)
                                                             for x in range(35, 55)]


def test_text_prior_maps_a_sentence_to_its_mean_training_box(phantoms):
    records = load_manifest(phantoms)
    prior = TextPrior.fit(records, "train")
    heat = prior.heatmap("There is a 6 mm nodule in the right upper lobe.", 224, 224)
    ys, xs = np.nonzero(heat)
    assert xs.mean() < 112, "right upper lobe is on the image left"
    assert ys.mean() < 112
    both = prior.heatmap("Moderate bilateral pleural effusions.", 224, 224)
    assert both[:, :100].any() and both[:, 124:].any()


def test_evaluate_baselines_scores_every_metric_overall_and_per_finding(phantoms):
    results = evaluate_baselines(phantoms, split="test", train_split="train")
    assert set(results) == set(BASELINES)
    for res in results.values():
        assert res.n > 0
        assert set(res.overall) == set(METRIC_NAMES)
        assert all(np.isfinite(v) for v in res.overall.values())
        assert res.by_finding
    assert "text_prior" in format_table(results)
    # The phantoms must not reward "point at the brightest blob"; the text prior is strong.
    assert results["brightest_region"].overall["pointing_game"] < 0.35
    assert results["text_prior"].overall["pointing_game"] > results["random"].overall[
        "pointing_game"]


def test_evaluate_baselines_rejects_unknown_names_and_empty_splits(phantoms):
    with pytest.raises(DataError, match="unknown baseline"):
        evaluate_baselines(phantoms, baselines=["oracle"])
    with pytest.raises(DataError, match="no study in split"):
        evaluate_baselines(phantoms, split="val")
