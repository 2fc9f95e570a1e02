"""Published models converted at full size from random-init files in their published layouts,
checked against the ORIGINAL code on the public real radiographs (tests/conftest.py finds them:
$LESIONLOC_TEST_DATA, then ../shared/data/real-dicom; skipped, saying why, without them):
BioViL and BioViL-T against hi-ml-multimodal's own classes, AFLoc against its inference code
re-implemented line by line (tests/afloc_reference.py). One conversion per architecture."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import require_real_file
from lesionloc_runtime.bundle import ModelBundle
from lesionloc_runtime.errors import BundleError, CheckpointError, ConfigError
from lesionloc_runtime.imageio import read_image
from lesionloc_runtime.localizer import Localizer

pytestmark = pytest.mark.slow
# three different films (440 x 440, 1841 x 1955, 1024 x 1024); the other three files of the
# folder are re-encodings of the first
FILMS = ("CR-MONO1-10-chest.dcm", "RG1_J2KI.dcm", "SIIM_chest_jpeg_baseline.dcm")
PROMPTS = ("Small left pleural effusion.", "right upper lobe opacity")
BIN = Path(sys.executable).parent


def real_films() -> dict[str, Path]:
    """FILMS found where the public test files are, or skip (before any conversion runs)."""
    return {film: require_real_file(film) for film in FILMS}
_CONVERTED: dict[str, dict[str, Path]] = {}


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(-1, a.shape[-1]).astype(np.float64), b.reshape(-1, b.shape[-1]).astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def same_peak(ours: np.ndarray, theirs: np.ndarray, tolerance: float,
              distance: int | None = 2) -> bool:
    """Our map's highest pixel is one of theirs (within `tolerance` of their maximum) and, with
    `distance`, at most that many pixels from where theirs is."""
    y, x = np.unravel_index(int(np.nanargmax(ours)), ours.shape)
    ty, tx = np.unravel_index(int(np.nanargmax(theirs)), theirs.shape)
    near = distance is None or (abs(y - ty) <= distance and abs(x - tx) <= distance)
    return bool(theirs[y, x] >= np.nanmax(theirs) - tolerance and near)


@pytest.fixture(scope="session")
def converted(tmp_path_factory, phantom_set):
    """kind -> {"snapshot": published files, "none": fp32 bundle, "int8": int8 bundle}."""
    from lesionloc_export.bundle_writer import ExportOptions, export_bundles

    def make(kind: str) -> dict[str, Path]:
        if kind not in _CONVERTED:
            root = tmp_path_factory.mktemp(kind)
            if kind == "afloc":
                from omegaconf import OmegaConf

                from lesionloc_export.sources.published import (
                    AFLOC_HYPER_PARAMETERS,
                    write_afloc_checkpoint,
                )

                # the real checkpoint's hyper-parameters are an OmegaConf DictConfig
                source = write_afloc_checkpoint(root / "afloc.ckpt", root / "bio_clinicalbert",
                                                hyper_parameters=OmegaConf.create(AFLOC_HYPER_PARAMETERS))
                precisions = ("none",)
            else:
                from hi_ml_reference import write_snapshot

                source = write_snapshot(root / "snapshot", kind)
                precisions = ("none", "int8")
            options = ExportOptions(source=kind, calibration=phantom_set, calibration_images=4,
                                    parity_images=2, text_model=root / "bio_clinicalbert")
            export_bundles(source, {p: root / p for p in precisions}, options)
            _CONVERTED[kind] = {"snapshot": source, **{p: root / p for p in precisions}}
        return _CONVERTED[kind]

    return make


@pytest.mark.parametrize("kind", ["biovil", "biovil-t"])
def test_fp32_bundle_matches_hi_ml_on_real_radiographs(kind, converted):
    """Embeddings cosine >= 0.9999 and the heatmap on the original image within 1e-3 of hi-ml's
    own similarity map (NaN outside the crop on both, same peak)."""
    from hi_ml_reference import HiMLReference

    paths = real_films()
    bundles = converted(kind)
    reference = HiMLReference(bundles["snapshot"], kind)
    localizer = Localizer.load(bundles["none"], threads=2)
    assert localizer.bundle.packed_pooling == "first"  # each sentence's [CLS] from one row
    texts = {p: reference.encode_text(p) for p in PROMPTS}
    ours_local, ours_global = localizer.encode_texts(list(PROMPTS))
    figures = {"text": min(cosines(ours_local[k], texts[p].numpy()).min()
                           for k, p in enumerate(PROMPTS)), "image": 1.0, "patch": 1.0, "map": 0.0}
    for k, prompt in enumerate(PROMPTS):
        assert cosines(ours_local[k], texts[prompt].numpy()).min() >= 0.9999
        assert cosines(ours_global[k], texts[prompt].numpy()).min() >= 0.9999
    for film in FILMS:
        image = read_image(paths[film])
        glob, patches, size = reference.encode_image(image.pixels)
        encoded = localizer.encode_image(image)
        figures["image"] = min(figures["image"], cosines(encoded.global_embed, glob).min())
        figures["patch"] = min(figures["patch"], cosines(encoded.patches, patches.numpy()).min())
        assert cosines(encoded.global_embed, glob).min() >= 0.9999, film
        assert cosines(encoded.patches, patches.numpy()).min() >= 0.9999, film
        for k, prompt in enumerate(PROMPTS):
            theirs = reference.similarity_map(patches, texts[prompt], size)
            ours = localizer.heatmap(encoded, ours_local[k]).render()
            assert ours.shape == theirs.shape == (image.height, image.width)
            assert np.array_equal(np.isnan(ours), np.isnan(theirs)), film
            seen = np.isfinite(theirs)
            figures["map"] = max(figures["map"], float(np.abs(ours[seen] - theirs[seen]).max()))
            assert np.abs(ours[seen] - theirs[seen]).max() <= 1e-3, (film, prompt)
            assert same_peak(ours, theirs, 1e-3), (film, prompt)
    print(f"{kind} fp32 vs hi-ml: worst cosine text {figures['text']:.7f}, image "
          f"{figures['image']:.7f}, patch {figures['patch']:.7f}; heatmap max abs diff "
          f"{figures['map']:.2e}")


@pytest.mark.parametrize("kind", ["biovil", "biovil-t"])
def test_int8_bundle_embeddings_stay_within_0_99_of_hi_ml(kind, converted):
    from hi_ml_reference import HiMLReference

    paths = real_films()
    bundles = converted(kind)
    reference = HiMLReference(bundles["snapshot"], kind)
    localizer = Localizer.load(bundles["int8"], threads=2)
    assert localizer.bundle.packed_pooling == "first"
    ours, _ = localizer.encode_texts(list(PROMPTS))
    theirs = np.concatenate([reference.encode_text(p).numpy() for p in PROMPTS])
    assert cosines(ours, theirs).min() >= 0.99
    worst = {"text": cosines(ours, theirs).min(), "image": 1.0, "patch mean": 1.0}
    for film in FILMS:
        image = read_image(paths[film])
        glob, patches, _ = reference.encode_image(image.pixels)
        encoded = localizer.encode_image(image)
        worst["image"] = min(worst["image"], cosines(encoded.global_embed, glob).min())
        worst["patch mean"] = min(worst["patch mean"],
                                  cosines(encoded.patches, patches.numpy()).mean())
        assert cosines(encoded.global_embed, glob).min() >= 0.99, film
        assert cosines(encoded.patches, patches.numpy()).mean() >= 0.99, film
    print(f"{kind} int8 vs hi-ml: worst cosine " + ", ".join(f"{k} {v:.5f}" for k, v in worst.items()))


def test_lesionloc_run_int8_biovil_t_heatmaps_equal_fp32_on_every_real_dicom(converted, tmp_path):
    """Must show: `lesionloc-run` on every DICOM of the folder with the int8 BioViL-T bundle;
    its raw heatmaps against the fp32 bundle's: NaN in the same places (outside the crop),
    values within 0.01 (cosines; int8 embeddings are within 0.99), and the int8 peak a peak
    of the fp32 map within that. (Where it lies is not compared: a random-init map is nearly
    flat, so near-equal maxima can sit far apart.)"""
    folder = real_films()[FILMS[0]].parent  # the public test files' folder, or skip
    bundles = converted("biovil-t")
    films = sorted(folder.glob("*.dcm"))
    assert len(films) >= 6
    raw = {}
    for precision in ("none", "int8"):
        out = tmp_path / precision
        for film in films:
            proc = subprocess.run(
                [str(BIN / "lesionloc-run"), str(film), "--query", PROMPTS[0], "--model",
                 str(bundles[precision]), "--out", str(out), "--save-raw", "--threads", "2"],
                capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
            assert "Research model (biovil-t)" in proc.stdout
            doc = json.loads((out / film.stem / "study.json").read_text())
            assert doc["input"]["crop"]["size"] == 448 and doc["model"]["architecture"] == "biovil-t"
            raw[precision, film.name] = np.load(out / film.stem / "sentence_01.npy")
    for film in films:
        fp32, int8 = raw["none", film.name], raw["int8", film.name]
        assert np.array_equal(np.isnan(fp32), np.isnan(int8)) and np.isnan(fp32).any()
        seen = np.isfinite(fp32)
        print(f"{film.name}: int8 vs fp32 heatmap max abs diff "
              f"{np.abs(fp32[seen] - int8[seen]).max():.4f}, fp32 range "
              f"{np.nanmin(fp32):.4f}..{np.nanmax(fp32):.4f}")
        assert np.abs(fp32[seen] - int8[seen]).max() <= 0.01, film.name
        assert same_peak(int8, fp32, 0.01, distance=None), film.name


def test_a_biovil_card_cannot_take_another_preprocessing(converted, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(converted("biovil")["none"], bundle)
    card = json.loads((bundle / "lesionloc.json").read_text())
    card["preprocessing"].update(method="letterbox", intensity="percentile", interpolation="area",
                                 resize=0)
    (bundle / "lesionloc.json").write_text(json.dumps(card))
    with pytest.raises(BundleError, match="'biovil' bundle takes preprocessing.method 'resize-crop'"):
        ModelBundle.load(bundle)
    card["preprocessing"] = json.loads((converted("biovil")["none"] / "lesionloc.json"
                                        ).read_text())["preprocessing"]
    card["architecture"] = "biovil-t"  # BioViL-T crops 448, this graph takes 480
    (bundle / "lesionloc.json").write_text(json.dumps(card))
    with pytest.raises(BundleError, match="image_size 448"):
        ModelBundle.load(bundle)


def test_biovil_t_weights_without_the_pooler_are_refused_naming_it(converted, tmp_path):
    from lesionloc_export.source import SourceFiles, load_source
    from lesionloc_export.sources.hi_ml import IMAGE_WEIGHTS

    snapshot = converted("biovil-t")["snapshot"]
    state = torch.load(snapshot / IMAGE_WEIGHTS["biovil-t"], weights_only=True)
    cut = tmp_path / "no-pooler.pt"
    torch.save({k: v for k, v in state.items() if "vit_pooler" not in k}, cut)
    with pytest.raises(CheckpointError, match=r"BioViL-T image weights lack \d+ tensors: "
                                              r"encoder\.vit_pooler\.\*"):
        load_source("biovil-t", SourceFiles(snapshot, image_weights=cut), {}, tmp_path)
    biovil = converted("biovil")["snapshot"] / IMAGE_WEIGHTS["biovil"]
    with pytest.raises(CheckpointError, match="lack"):  # BioViL's file has no temporal parts
        load_source("biovil-t", SourceFiles(snapshot, image_weights=biovil), {}, tmp_path)


def test_a_snapshot_without_image_weights_asks_for_them(converted, tmp_path):
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    for name in ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"):
        (snapshot / name).symlink_to(converted("biovil")["snapshot"] / name)
    proc = subprocess.run([str(BIN / "lesionloc-export"), str(snapshot), "--from", "biovil",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 6
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "--image-weights" in proc.stderr and "Traceback" not in proc.stderr


def test_afloc_bundle_matches_its_inference_code_on_real_radiographs(converted):
    """Preprocessing (8-bit letterbox to 224), embeddings (cosine >= 0.9999, same length: its
    map is a dot product), the smoothed 19 x 19 grid and the 224 px map of eval/common.py."""
    import afloc_reference as ref
    from hi_ml_reference import import_hi_ml
    from transformers import AutoTokenizer, BertModel

    from lesionloc_runtime.heatmap import Heatmap
    from lesionloc_runtime.preprocess import Letterbox, preprocess, to_uint8

    import_hi_ml()  # torchvision: AFLoc's backbone is torchvision's resnet50
    from torchvision.models import resnet50

    films = real_films()
    paths = converted("afloc")
    checkpoint = torch.load(paths["snapshot"], weights_only=False)  # our own test file
    state = {k.split("afloc.")[-1]: v for k, v in checkpoint["state_dict"].items()}  # builder.py:22-27

    def part(prefix: str) -> dict:
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

    resnet = resnet50()
    resnet.fc = torch.nn.Identity()
    resnet.load_state_dict(part("img_encoder.model."))
    local = torch.nn.Conv2d(1024, 768, 1, bias=False)
    local.load_state_dict(part("img_encoder.local_embedder."))
    glob = torch.nn.Linear(2048, 768)
    glob.load_state_dict(part("img_encoder.global_embedder."))
    text_dir = paths["snapshot"].parent / "bio_clinicalbert"
    from transformers import BertConfig

    bert = BertModel(BertConfig.from_json_file(text_dir / "config.json"))
    bert.load_state_dict(part("text_encoder.model."), strict=False)
    for module in (resnet, local, glob, bert):
        module.eval()
    tokenizer = AutoTokenizer.from_pretrained(text_dir)  # afloc_model.py:39
    idxtoword = {v: k for k, v in tokenizer.get_vocab().items()}

    localizer = Localizer.load(paths["none"], threads=2)
    assert localizer.bundle.packed_pooling == "sum"  # its four layers summed, / the word slots
    ours_text, _ = localizer.encode_texts(list(PROMPTS))
    with torch.no_grad():
        teg = {p: ref.text_forward(bert, *_ids(ref.process_text(p, tokenizer, 97)), idxtoword)
               for p in PROMPTS}
    worst = {"text": 1.0, "image": 1.0, "patch": 1.0, "grid": 0.0, "map": 0.0}
    for k, prompt in enumerate(PROMPTS):
        want = teg[prompt].numpy()
        worst["text"] = min(worst["text"], cosines(ours_text[k], want).min())
        assert cosines(ours_text[k], want).min() >= 0.9999
        assert np.linalg.norm(ours_text[k]) == pytest.approx(np.linalg.norm(want), rel=1e-3)
    for film in FILMS:
        image = read_image(films[film])
        gray = to_uint8(image.pixels, "uint8")  # the 8-bit film AFLoc would read
        imgs = ref.process_img(gray)
        prep = preprocess(image, localizer.bundle.preprocessing)
        assert np.abs(prep.tensor[0] - (imgs[0, 0].numpy() * 0.5 + 0.5)).max() <= 1e-6, film
        with torch.no_grad():
            iel, ieg = ref.image_forward(resnet, local, glob, imgs)
        encoded = localizer.encode_image(image)
        worst["patch"] = min(worst["patch"], cosines(encoded.patches, iel.numpy()).min())
        worst["image"] = min(worst["image"], cosines(encoded.global_embed, ieg.numpy()).min())
        assert cosines(encoded.patches, iel.numpy()).min() >= 0.9999, film
        assert cosines(encoded.global_embed, ieg.numpy()).min() >= 0.9999, film
        for k, prompt in enumerate(PROMPTS):
            grid, theirs = ref.similarity_map(iel, teg[prompt])
            heat = localizer.heatmap(encoded, ours_text[k])
            span = float(grid.max() - grid.min())
            assert np.abs(heat.grid - grid).max() <= 1e-3 * span, (film, prompt)
            square = Heatmap(heat.grid, Letterbox.fit(224, 224, 224), heat.stride, heat.origin,
                             heat.upsampling).render()
            assert np.abs(square - theirs).max() <= 1e-3 * span, (film, prompt)
            worst["grid"] = max(worst["grid"], float(np.abs(heat.grid - grid).max()) / span)
            worst["map"] = max(worst["map"], float(np.abs(square - theirs).max()) / span)
    print("afloc fp32 vs its code: worst cosine text {text:.7f}, image {image:.7f}, patch "
          "{patch:.7f}; max abs diff / range: grid {grid:.2e}, 224 px map {map:.2e}".format(**worst))


def _ids(tokens: dict) -> tuple:
    return tokens["input_ids"], tokens["attention_mask"]


def test_afloc_needs_its_text_model_and_says_which_option(tmp_path):
    from lesionloc_export.source import SourceFiles, load_source

    with pytest.raises(ConfigError, match="--text-model"):
        load_source("afloc", SourceFiles(tmp_path / "afloc.ckpt"), {}, tmp_path)
    proc = subprocess.run([str(BIN / "lesionloc-export"), str(tmp_path / "afloc.ckpt"), "--from",
                           "afloc", "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "--text-model" in proc.stderr


def test_an_afloc_checkpoint_of_another_configuration_or_missing_tensors_is_refused(tmp_path):
    from lesionloc_export.source import SourceFiles, load_source
    from lesionloc_export.sources.published import AFLOC_HYPER_PARAMETERS, write_tokenizer_files

    text = tmp_path / "bcb"
    write_tokenizer_files(text, 28996, lower_case=None)
    (text / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": 28996}))
    other = json.loads(json.dumps(AFLOC_HYPER_PARAMETERS))
    other["model"]["vision"]["model_name"] = "densenet_121"
    ckpt = tmp_path / "a.ckpt"
    torch.save({"state_dict": {"afloc.img_encoder.global_embedder.bias": torch.zeros(768)},
                "hyper_parameters": other}, ckpt)
    with pytest.raises(CheckpointError, match="model.vision.model_name='densenet_121'"):
        load_source("afloc", SourceFiles(ckpt, text_model=text), {}, tmp_path)
    torch.save({"state_dict": {"afloc.img_encoder.global_embedder.bias": torch.zeros(768)},
                "hyper_parameters": AFLOC_HYPER_PARAMETERS}, ckpt)
    with pytest.raises(CheckpointError, match=r"AFLoc text encoder weights lack \d+ tensors: "
                                              r"text_encoder\.model\.\*"):
        load_source("afloc", SourceFiles(ckpt, text_model=text), {}, tmp_path)
