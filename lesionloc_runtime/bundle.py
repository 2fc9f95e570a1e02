"""The model bundle: a directory of two ONNX encoders, a tokenizer and its card, `lesionloc.json`,
which describes the model exactly (architecture, preprocessing, patch grid, text preparation,
heatmap) and holds the sha256 of every file. Export writes it with `write_card`; the runtime
opens it with `ModelBundle.load`, which verifies version, description and checksums first."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lesionloc_runtime.architectures import GridSpec, TextConfig, check_architecture
from lesionloc_runtime.contract import CARD_NAME, EncoderSpec
from lesionloc_runtime.errors import BundleError, ConfigError, printable
from lesionloc_runtime.fileio import atomic_write_json, sha256_file
from lesionloc_runtime.heatmap import HeatmapConfig
from lesionloc_runtime.preprocess import PreprocessConfig
from lesionloc_runtime.tokens import PACKED_POOLING

__all__ = [
    "BUNDLE_FORMAT",
    "CARD_NAME",
    "DEMO_NOTICE",
    "FORMAT_VERSION",
    "IMAGE_ENCODER_FILE",
    "IMPORTED_NOTICE",
    "READABLE_VERSIONS",
    "RESEARCH_NOTICE",
    "TEXT_ENCODER_FILE",
    "TOKENIZER_FILE",
    "ModelBundle",
    "check_image_size",
    "check_patch_grid",
    "upgrade_v1",
    "write_card",
]

BUNDLE_FORMAT = "lesionloc-bundle"
# 2: the card describes the model (architecture, grid, text, heatmap conventions); version-1
# cards, all of our own letterbox models, are still read as such.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
IMAGE_ENCODER_FILE = "image_encoder.onnx"
TEXT_ENCODER_FILE = "text_encoder.onnx"
TOKENIZER_FILE = "tokenizer.json"
DEMO_NOTICE = (
    "DEMO MODEL trained only on synthetic phantom radiographs: its output has no clinical "
    "meaning and must not be used for diagnosis."
)
RESEARCH_NOTICE = "Research software: not a medical device, not validated for clinical use."
IMPORTED_NOTICE = (
    "Research model ({}) converted from its published weights: not a medical device, not "
    "validated for clinical use."
)


@dataclass(frozen=True)
class ModelBundle:
    """A verified bundle on disk. Construct it with `ModelBundle.load`."""

    path: Path
    card: dict[str, Any]
    preprocessing: PreprocessConfig
    heatmap: HeatmapConfig
    image_encoder: EncoderSpec
    text_encoder: EncoderSpec
    tokenizer_file: str
    max_length: int
    embed_dim: int
    grid: GridSpec
    card_sha256: str
    architecture: str = "lesionloc"
    text: TextConfig = TextConfig()
    files: dict[str, str] = field(repr=False, default_factory=dict)

    @property
    def is_demo(self) -> bool:
        return bool(self.card.get("demo", False))

    @property
    def notice(self) -> str:
        if self.is_demo:
            return DEMO_NOTICE
        if self.architecture != "lesionloc":
            return IMPORTED_NOTICE.format(self.architecture)
        return RESEARCH_NOTICE

    @property
    def quantization(self) -> str:
        return str(self.card.get("quantization", "none"))

    @property
    def name(self) -> str:
        return str(self.card.get("name", self.path.name))

    @property
    def grid_stride(self) -> float:
        return int(self.grid.stride) if self.grid.stride.is_integer() else self.grid.stride

    @property
    def grid_origin(self) -> float:
        return self.grid.origin

    @property
    def heatmap_source(self) -> str:
        """Our models': "local" (unit patch embeddings from the local heads) or "global" (each
        location's share of the global embedding, for models trained without the local loss)."""
        return "global" if self.heatmap.similarity == "global-share" else "local"

    @property
    def packed_pooling(self) -> str | None:
        """How a packed text graph pools each window (tokens.PACKED_POOLING: "mean" or
        "first"); None for a padded one."""
        return PACKED_POOLING[self.text.pooling] if self.text_encoder.packed else None

    def file(self, name: str) -> Path:
        return self.path / name

    def provenance(self, providers: Sequence[str] | None = None) -> dict[str, Any]:
        """What every output records about the model that produced it; with `providers`, the
        execution providers that really ran it (a CUDA request that fell back to the CPU
        reads CPUExecutionProvider)."""
        return {
            "name": self.name,
            "bundle": str(self.path),
            "card_sha256": self.card_sha256,
            "format_version": self.card.get("format_version"),
            "architecture": self.architecture,
            "quantization": self.quantization,
            "demo": self.is_demo,
            "trained_on": self.card.get("trained_on", "unknown"),
            "notice": self.notice,
            **({} if providers is None else {"execution_providers": list(providers)}),
        }

    @classmethod
    def load(cls, path: str | os.PathLike[str], verify: bool = True) -> ModelBundle:
        """Open and verify a bundle directory; BundleError names what is wrong."""
        root = Path(path)
        if not root.is_dir():
            raise BundleError(f"{root}: model bundle directory not found")
        card_path = root / CARD_NAME
        if not card_path.is_file():
            raise BundleError(f"{root}: not a model bundle ({CARD_NAME} is missing)")
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except (ValueError, RecursionError) as exc:  # also undecodable bytes, huge numbers
            raise BundleError(f"{card_path}: not valid JSON ({printable(str(exc), 160)})") from None
        if not isinstance(card, dict) or card.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"{card_path}: not a {BUNDLE_FORMAT} card")
        version = card.get("format_version")
        if version not in READABLE_VERSIONS or isinstance(version, bool):
            raise BundleError(
                f"{card_path}: bundle format version {version!r}, this runtime reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}; re-export the model with a matching "
                "lesionloc-export"
            )
        checksums = _checksums(card, card_path)
        try:
            sections = card if version == 2 else upgrade_v1(card)
            bundle = cls._parse(root, card, sections, sha256_file(card_path), checksums)
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise BundleError(f"{card_path}: malformed card ({exc})") from None
        _check_description(bundle, str(card_path))
        for required in (bundle.image_encoder.file, bundle.text_encoder.file, bundle.tokenizer_file):
            if required not in checksums:
                raise BundleError(f"{card_path}: {required} has no checksum entry")
        if verify:
            bundle.verify()
        return bundle

    @classmethod
    def _parse(cls, root: Path, card: dict[str, Any], sections: dict[str, Any], card_sha256: str,
               checksums: dict[str, str]) -> ModelBundle:
        image = EncoderSpec.from_dict(sections["image_encoder"], "image")
        text = EncoderSpec.from_dict(sections["text_encoder"], "text")
        tokenizer = sections["tokenizer"]
        if not isinstance(tokenizer, dict) or not isinstance(tokenizer.get("file"), str):
            raise ValueError("tokenizer must be an object with a 'file' name")
        preprocessing = sections["preprocessing"]
        if not isinstance(preprocessing, dict):
            raise ValueError("preprocessing must be an object")
        prep = PreprocessConfig.from_dict(preprocessing)
        heatmap = HeatmapConfig.from_dict(sections.get("heatmap", {}))
        grid = GridSpec.from_dict(sections["grid"], prep.image_size)
        text_config = TextConfig.from_dict(sections["text"])
        architecture = sections["architecture"]
        check_architecture(architecture, {"preprocessing": prep.to_dict(), "grid": grid.to_dict(),
                                          "text": text_config.to_dict(),
                                          "heatmap": heatmap.to_dict()}, str(root / CARD_NAME))
        return cls(
            path=root,
            card=card,
            preprocessing=prep,
            heatmap=heatmap,
            image_encoder=image,
            text_encoder=text,
            tokenizer_file=tokenizer["file"],
            max_length=_positive_int(tokenizer, "max_length", "tokenizer.max_length"),
            embed_dim=_positive_int(sections, "embed_dim"),
            grid=grid,
            card_sha256=card_sha256,
            architecture=architecture,
            text=text_config,
            files=checksums,
        )

    def verify(self) -> None:
        """Check every listed file exists and has the recorded sha256."""
        for name, expected in self.files.items():
            target = self.path / name
            if not target.is_file():
                raise BundleError(f"{target}: listed in {CARD_NAME} but missing")
            actual = sha256_file(target)
            if actual != expected:
                raise BundleError(
                    f"{target}: checksum mismatch (sha256 {actual[:12]}..., the card says "
                    f"{expected[:12]}...); the file was modified or the bundle is corrupt"
                )


def _checksums(card: dict[str, Any], card_path: Path) -> dict[str, str]:
    files = card.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleError(f"{card_path}: the 'files' checksum table is missing")
    checksums: dict[str, str] = {}
    for name, entry in files.items():
        digest = entry.get("sha256") if isinstance(entry, dict) else entry
        if not isinstance(digest, str) or len(digest) != 64:
            raise BundleError(f"{card_path}: no valid sha256 for {name}")
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise BundleError(f"{card_path}: file entry {name!r} points outside the bundle")
        checksums[name] = digest
    return checksums


def upgrade_v1(card: dict[str, Any]) -> dict[str, Any]:
    """A version-1 card (our letterbox models, before cards described conventions) in the
    version-2 layout: stride-16/32 receptive-field grid, cosine or global-share heatmaps."""
    source = card.get("heatmap_source", "local")
    if source not in ("local", "global"):
        raise ValueError(f"heatmap_source {source!r} is not local or global")
    prep = card["preprocessing"]
    size = prep.get("image_size") if isinstance(prep, dict) else None
    stride, origin = card["grid_stride"], card["grid_origin"]
    for key, value in (("grid_stride", stride), ("grid_origin", origin)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{key}={value!r} is not a finite number")
    if not isinstance(stride, int) or stride <= 0:
        raise ValueError(f"grid_stride={stride!r} is not a positive integer")
    heatmap = card.get("heatmap", {})
    if isinstance(heatmap, dict):
        heatmap = {**heatmap, "similarity": "global-share" if source == "global" else "cosine",
                   "score": "global-cosine" if source == "global" else "local-attention"}
    cells = size // stride if isinstance(size, int) and not isinstance(size, bool) else 0
    pooling = card.get("provenance", {}).get("train_config", {}).get("model", {}).get(
        "text", {}).get("pooling", "mean")
    return {**card, "architecture": "lesionloc", "heatmap": heatmap,
            "grid": {"shape": [cells, cells], "stride": stride, "origin": origin,
                     "placement": "receptive-field"},
            "text": {"preparation": "none", "pooling": pooling}}


def _check_description(bundle: ModelBundle, where: str) -> None:
    """The card's description must match the graphs it declares: input size, grid, width."""
    image, text = bundle.image_encoder, bundle.text_encoder
    check_image_size(image.inputs.get("pixel_values", []), bundle.preprocessing.image_size, where)
    patches = image.outputs["patch_embeds"]
    declared = [d for d in patches[1:3] if isinstance(d, int)]
    if declared and declared != list(bundle.grid.shape)[: len(declared)]:
        raise BundleError(f"{where}: the image encoder gives a {patches[1]} x {patches[2]} patch "
                          f"grid, the card's grid.shape is {list(bundle.grid.shape)}")
    if text.packed and bundle.text.pooling not in PACKED_POOLING:
        raise BundleError(f"{where}: a packed text graph pools by one of "
                          f"{sorted(PACKED_POOLING)}, the card's text.pooling is "
                          f"{bundle.text.pooling!r}")
    widths = {image.dim("patch_embeds", 3), image.dim("image_embeds", 1),
              text.dim("sentence_embeds", 1), text.dim("global_embeds", 1)}
    if any(isinstance(w, int) and w != bundle.embed_dim for w in widths):
        raise BundleError(f"{where}: the encoders' embedding widths {sorted(map(str, widths))} "
                          f"differ from the card's embed_dim {bundle.embed_dim}")


def _positive_int(data: dict[str, Any], key: str, name: str | None = None) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name or key}={value!r} is not a positive integer")
    return value


def check_image_size(shape: list[Any], size: int, source: str) -> None:
    """An image encoder input (N, 1, H, W) must take what preprocessing makes: run on the
    card's declaration at load and on the loaded graph (a card may declare axis names where
    the graph has fixed sizes)."""
    fixed = [d for d in shape[-2:] if isinstance(d, int)]
    if len(shape) != 4 or any(d != size for d in fixed):
        raise BundleError(
            f"{source}: the image encoder takes pixel_values {shape}, but the bundle's "
            f"preprocessing.image_size is {size}"
        )


def check_patch_grid(shape: list[Any], grid: GridSpec, source: str) -> None:
    """The loaded graph's patch_embeds (N, h, w, D) must be the card's grid."""
    fixed = [(d, n) for d, n in zip(shape[1:3], grid.shape, strict=False) if isinstance(d, int)]
    if len(shape) != 4 or any(d != n for d, n in fixed):
        raise BundleError(f"{source}: the image encoder gives patch_embeds {shape}, but the "
                          f"card's grid.shape is {list(grid.shape)}")


def write_card(root: str | os.PathLike[str], card: dict[str, Any]) -> Path:
    """Write `lesionloc.json` with the sha256 of every other file in `root` (export side)."""
    root = Path(root)
    files: dict[str, dict[str, Any]] = {}
    for target in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = target.relative_to(root).as_posix()
        if rel == CARD_NAME or target.name.startswith("."):
            continue
        files[rel] = {"sha256": sha256_file(target), "bytes": target.stat().st_size}
    body = dict(card)
    body["format"] = BUNDLE_FORMAT
    body["format_version"] = FORMAT_VERSION
    body["files"] = files
    out = root / CARD_NAME
    atomic_write_json(out, body)
    return out
