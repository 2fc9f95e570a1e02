"""Each loss term against a small case computed by hand (plain loops, no shared code), and
the full objective's ability to overfit one batch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lesionloc_train.config import LossConfig
from lesionloc_train.losses import GlobalContrastiveLoss, LesionLocLoss, LocalSentenceLoss


def _unit(*v):
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)


def _ce(logits, target):
    logits = np.asarray(logits, dtype=np.float64)
    return -(logits[target] - math.log(np.exp(logits).sum()))


def test_global_loss_matches_hand_computed_infonce():
    images = np.stack([_unit(1, 0), _unit(0.6, 0.8)])
    texts = np.stack([_unit(0.8, 0.6), _unit(0, 1)])
    scale = 10.0
    sim = images @ texts.T  # [[0.8, 0], [0.96, 0.8]]
    want_i2t = np.mean([_ce(scale * sim[i], i) for i in range(2)])
    want_t2i = np.mean([_ce(scale * sim[:, j], j) for j in range(2)])
    got = GlobalContrastiveLoss()(torch.tensor(images, dtype=torch.float32),
                                  torch.tensor(texts, dtype=torch.float32), torch.tensor(scale))
    assert got["global_i2t"].item() == pytest.approx(want_i2t, rel=1e-5)
    assert got["global_t2i"].item() == pytest.approx(want_t2i, rel=1e-5)
    # a concrete number too, so a silent change of convention shows up
    assert want_i2t == pytest.approx(0.89212, abs=1e-4)


def _local_by_hand(sentences, mask, patches, tau, gamma, temp):
    """sentences (B, S, D), mask (B, S), patches (B, K, D) -> (Ll(v|t), Ll(t|v))."""
    n = len(sentences)
    z = np.zeros((n, n))
    for i in range(n):
        for b in range(n):
            terms = []
            for j in range(len(sentences[i])):
                if not mask[i][j]:
                    continue
                s = sentences[i][j]
                logits = [float(s @ p) / tau for p in patches[b]]
                weights = np.exp(logits) / np.exp(logits).sum()
                c = sum(w * p for w, p in zip(weights, patches[b], strict=True))
                r = float(s @ c) / (np.linalg.norm(s) * np.linalg.norm(c))
                terms.append(math.exp(gamma * r))
            z[i, b] = math.log(sum(terms)) / gamma
    logits = z / temp
    t2i = np.mean([_ce(logits[i], i) for i in range(n)])
    i2t = np.mean([_ce(logits[:, b], b) for b in range(n)])
    return t2i, i2t


def test_local_loss_matches_hand_computed_case():
    sentences = np.stack([
        np.stack([_unit(1, 0, 0), _unit(0, 1, 0)]),
        np.stack([_unit(0, 0, 1), _unit(1, 1, 0)]),
    ])
    mask = np.array([[True, True], [True, False]])  # report 1 has one sentence
    patches = np.stack([
        np.stack([_unit(1, 0.2, 0), _unit(0, 1, 0.1), _unit(0.1, 0.1, 1)]),
        np.stack([_unit(0, 0, 1), _unit(0.3, 0, 1), _unit(1, 0, 0)]),
    ])
    tau, gamma, temp = 0.25, 5.0, 0.1
    want_t2i, want_i2t = _local_by_hand(sentences, mask, patches, tau, gamma, temp)
    loss = LocalSentenceLoss(tau, gamma, temp)
    got = loss(torch.tensor(sentences, dtype=torch.float32), torch.tensor(mask),
               torch.tensor(patches, dtype=torch.float32).view(2, 1, 3, 3))
    assert got["local_t2i"].item() == pytest.approx(want_t2i, rel=1e-4)
    assert got["local_i2t"].item() == pytest.approx(want_i2t, rel=1e-4)


def test_local_loss_ignores_masked_sentences_and_empty_reports():
    rng = np.random.default_rng(0)
    sentences = torch.nn.functional.normalize(torch.tensor(rng.normal(size=(3, 2, 4)),
                                                           dtype=torch.float32), dim=-1)
    patches = torch.nn.functional.normalize(torch.tensor(rng.normal(size=(3, 2, 2, 4)),
                                                         dtype=torch.float32), dim=-1)
    mask = torch.tensor([[True, False], [True, True], [False, False]])
    loss = LocalSentenceLoss()
    full = loss(sentences, mask, patches)
    # changing a masked-out sentence changes nothing
    altered = sentences.clone()
    altered[0, 1] = -altered[0, 1]
    assert loss(altered, mask, patches)["local_t2i"].item() == pytest.approx(full["local_t2i"].item())
    # the report without sentences is left out entirely: same as a batch of the other two
    sub = loss(sentences[:2], mask[:2], patches[:2])
    assert sub["local_i2t"].item() == pytest.approx(full["local_i2t"].item(), rel=1e-6)


def _objective_args(seed: int, b: int = 3, d: int = 8) -> tuple:
    """Random unit features for LesionLocLoss: image global, a 2x2 patch grid, report global,
    two sentences per report (all valid) and a logit scale of 10."""
    rng = np.random.default_rng(seed)

    def unit(shape):
        values = torch.tensor(rng.normal(size=shape), dtype=torch.float32)
        return torch.nn.functional.normalize(values, dim=-1)

    return (unit((b, d)), unit((b, 2, 2, d)), unit((b, d)), unit((b, 2, d)),
            torch.ones(b, 2, dtype=torch.bool), torch.tensor(10.0))


def test_loss_weights_select_the_ablation_terms():
    args = _objective_args(1)
    full = LesionLocLoss(LossConfig())(*args)
    glob = LesionLocLoss(LossConfig(local_t2i=0, local_i2t=0))(*args)
    local = LesionLocLoss(LossConfig(global_t2i=0, global_i2t=0))(*args)
    assert set(glob) == {"global_i2t", "global_t2i", "loss"}
    assert set(local) == {"local_i2t", "local_t2i", "loss"}
    assert full["loss"].item() == pytest.approx(glob["loss"].item() + local["loss"].item(), rel=1e-6)
    half = LesionLocLoss(LossConfig(global_t2i=0.5))(*args)
    assert half["loss"].item() == pytest.approx(full["loss"].item() - 0.5 * full["global_t2i"].item(),
                                                rel=1e-6)


def test_full_model_overfits_one_repeated_batch(tiny_config):
    from lesionloc_train.model import LesionLocModel

    torch.manual_seed(0)
    model = LesionLocModel(tiny_config.model)
    loss_fn = LesionLocLoss(tiny_config.loss)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    b, s = 6, 2
    pixels = torch.rand(b, 1, 128, 128)
    reports = torch.randint(5, 500, (b, 12))
    sentence_ids = torch.randint(5, 500, (b * s, 8))
    valid = torch.ones(b, s, dtype=torch.bool)
    losses = []
    for _ in range(50):
        image_g, patches, report_g, sent = model(pixels, reports, torch.ones_like(reports),
                                                 sentence_ids, torch.ones_like(sentence_ids))
        terms = loss_fn(image_g, patches, report_g, sent.view(b, s, -1), valid, model.logit_scale.exp())
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        losses.append(terms["loss"].item())
    assert losses[-1] < 0.25 * losses[0], losses[::10]


@pytest.mark.parametrize("preset", ["tiny", "demo"])
def test_grid_origin_is_where_each_cells_receptive_field_is_centred(preset):
    """Heatmaps put cell k at grid_origin + k * stride: measure it as the centroid of the
    input gradient of one cell's embedding (half a patch off is the classic bug). Central
    cells, so the image border does not truncate the receptive field, and four inputs, so one
    random network's gradient noise averages out (10 seeds: worst 2.8 px for tiny)."""
    from lesionloc_train.config import load_config
    from lesionloc_train.model import LesionLocModel, receptive_field_offsets

    cfg = load_config(preset)
    torch.manual_seed(0)
    model = LesionLocModel(cfg.model).eval()
    size = cfg.model.image.image_size
    stride = model.grid_stride
    n = size // stride
    for cell in [(n // 2 - 1, n // 2), (n // 2, n // 2 - 1)]:
        images = torch.rand(4, 1, size, size)
        ((dx, dy),) = receptive_field_offsets(model, images, [cell])
        # A quarter patch: the half-patch bug (stride / 2 = 8 px) cannot pass.
        assert dx == pytest.approx(0.0, abs=stride / 4)
        assert dy == pytest.approx(0.0, abs=stride / 4)


def test_heatmap_source_follows_the_loss_unless_set():
    from lesionloc_runtime.errors import ConfigError
    from lesionloc_train.config import load_config

    assert load_config("tiny").model.heatmap_source == "local"
    assert load_config(["demo", "global_only"]).model.heatmap_source == "global"
    assert load_config(["demo", "local_only"]).model.heatmap_source == "local"
    explicit = load_config(["tiny", "global_only"], ["model.heatmap_source=local"])
    assert explicit.model.heatmap_source == "local"
    with pytest.raises(ConfigError, match="heatmap_source"):
        load_config("tiny", ["model.heatmap_source=stage4"])
    with pytest.raises(ConfigError, match="without the local loss"):
        load_config("tiny", ["model.heatmap_source=global"])


def test_global_heatmaps_are_each_locations_share_of_the_global_embedding():
    """With heatmap_source=global the grid is the global projection at each location of the
    last stage (stride 32), not normalized per cell and averaging to the global embedding;
    sentences use the global text projection; the unused local heads are frozen."""
    from lesionloc_train.config import load_config
    from lesionloc_train.model import LesionLocModel

    cfg = load_config(["tiny", "global_only"])
    torch.manual_seed(0)
    model = LesionLocModel(cfg.model).eval()
    size = cfg.model.image.image_size
    assert model.grid_stride == 32 and model.grid_origin == 0.5
    pixels = torch.rand(2, 1, size, size)
    image_global, patches = model.encode_image(pixels)
    assert patches.shape[1:3] == (size // 32, size // 32)
    encoder = model.image_encoder
    x = (pixels.expand(-1, encoder.channels, -1, -1) - encoder.pixel_mean) / encoder.pixel_std
    last = encoder.backbone(x).last_hidden_state.permute(0, 2, 3, 1)
    cells = encoder.global_proj(last)  # (B, h, w, D), one vector per location
    cosine = torch.nn.functional.cosine_similarity(cells, patches, dim=-1)
    assert torch.allclose(cosine, torch.ones_like(cosine), atol=1e-5)  # directions kept...
    assert not torch.allclose(patches.norm(dim=-1), torch.ones(patches.shape[:3]))  # ...and lengths
    assert torch.allclose(patches.mean((1, 2)), image_global, atol=1e-5)  # cells average to it
    ids = torch.randint(5, 500, (3, 8))
    local, glob = model.encode_text(ids, torch.ones_like(ids))
    assert torch.equal(local, glob)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not any("local_proj" in n for n in trainable) and any("global_proj" in n for n in trainable)


def _sentence_by_hand(sentences, focus, groups, patches, tau, temp):
    """Ls(v|s): mean over focus sentences of CE over images of r_ij^b / temp, label i, with the
    images b != i whose report holds the same group id left out."""
    n = len(sentences)
    losses = []
    for i in range(n):
        for j in range(len(sentences[i])):
            if not focus[i][j]:
                continue
            s = sentences[i][j]
            logits = []
            for b in range(n):
                if b != i and any(g == groups[i][j] for g in groups[b]):
                    continue
                w = np.exp([float(s @ p) / tau for p in patches[b]])
                c = sum(wk * p for wk, p in zip(w / w.sum(), patches[b], strict=True))
                r = float(s @ c) / (np.linalg.norm(s) * np.linalg.norm(c))
                logits.append((b, r / temp))
            target = [b for b, _ in logits].index(i)
            losses.append(_ce([v for _, v in logits], target))
    return float(np.mean(losses))


def test_sentence_term_matches_hand_computed_case_and_skips_equal_sentences():
    rng = np.random.default_rng(3)
    sentences = np.stack([np.stack([_unit(*rng.normal(size=3)) for _ in range(2)]) for _ in range(3)])
    patches = np.stack([np.stack([_unit(*rng.normal(size=3)) for _ in range(4)]) for _ in range(3)])
    mask = np.array([[True, True], [True, True], [True, False]])
    focus = np.array([[True, False], [False, True], [True, False]])
    groups = np.array([[0, 1], [2, 3], [0, -1]])  # report 2's sentence 0 equals report 0's
    tau, temp = 0.25, 0.1
    want = _sentence_by_hand(sentences, focus, groups, patches, tau, temp)
    loss = LocalSentenceLoss(tau, 5.0, temp)
    args = (torch.tensor(sentences, dtype=torch.float32), torch.tensor(mask),
            torch.tensor(patches, dtype=torch.float32).view(3, 2, 2, 3))
    got = loss(*args, torch.tensor(focus), torch.tensor(groups), sentence_weight=1.0)
    assert got["local_sentence"].item() == pytest.approx(want, rel=1e-4)
    # without groups the equal sentence's image is a negative again: a different value
    plain = loss(*args, torch.tensor(focus), None, sentence_weight=1.0)["local_sentence"].item()
    assert abs(plain - want) > 1e-3
    # the report-level terms do not move, and weight 0 adds no term
    base = loss(*args)
    assert "local_sentence" not in base
    assert got["local_t2i"].item() == pytest.approx(base["local_t2i"].item(), rel=1e-6)


def test_sentence_weight_adds_its_term_to_the_objective():
    focus = torch.tensor([[True, False], [False, False], [True, True]])
    groups = torch.arange(6).view(3, 2)
    args = (*_objective_args(4), focus, groups)
    base = LesionLocLoss(LossConfig())(*args)
    with_term = LesionLocLoss(LossConfig(local_sentence=0.5))(*args)
    assert "local_sentence" not in base
    assert with_term["local_sentence"].item() > 0
    assert with_term["loss"].item() == pytest.approx(
        base["loss"].item() + 0.5 * with_term["local_sentence"].item(), rel=1e-6)
    with pytest.raises(Exception, match="local_kinds"):
        LossConfig(local_sentence=1.0, local_kinds=("normal",))
    with pytest.raises(Exception, match="local_sentence"):
        LossConfig(local_sentence=-1.0)
