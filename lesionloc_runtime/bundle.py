"""The model bundle: a directory of two ONNX encoders, a tokenizer and `lesionloc.json`.
Export writes it with `write_manifest`; the runtime opens it with `ModelBundle.load`, which
verifies the format version and the sha256 of every file before anything runs."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lesionloc_runtime.errors import BundleError, ConfigError, printable
from lesionloc_runtime.fileio import atomic_write_json, sha256_file
from lesionloc_runtime.preprocess import PreprocessConfig

BUNDLE_FORMAT = "lesionloc-bundle"
FORMAT_VERSION = 1
MANIFEST_NAME = "lesionloc.json"
IMAGE_ENCODER_FILE = "image_encoder.onnx"
TEXT_ENCODER_FILE = "text_encoder.onnx"
TOKENIZER_FILE = "tokenizer.json"
DEMO_NOTICE = (
    "DEMO MODEL trained only on synthetic phantom radiographs: its output has no clinical "
    "meaning and must not be used for diagnosis."
)
RESEARCH_NOTICE = "Research software: not a medical device, not validated for clinical use."


@dataclass(frozen=True)
class HeatmapConfig:
    """How a patch-similarity grid becomes a heatmap and boxes (defaults carried per bundle)."""

    attention_temperature: float = 0.25  # tau_a of the local loss, used for the sentence score
    smoothing_sigma: float = 0.75  # Gaussian sigma in patches, applied on the grid
    box_threshold: float = 0.6  # fraction of the heatmap's min-max range that starts a box
    min_box_fraction: float = 0.001  # components smaller than this fraction of the image are dropped
    max_boxes: int = 3

    def __post_init__(self) -> None:
        # name -> (lowest, highest, lowest allowed itself); a hand-edited bundle must fail
        # here, not as a TypeError or an OpenCV error in the middle of a study
        ranges = {
            "attention_temperature": (0.0, math.inf, False),
            "smoothing_sigma": (0.0, 100.0, True),
            "box_threshold": (0.0, 1.0, True),
            "min_box_fraction": (0.0, 1.0, True),
            "max_boxes": (1, 1000, True),
        }
        for name, (low, high, closed) in ranges.items():
            value = getattr(self, name)
            wanted = "an integer" if name == "max_boxes" else "a number"
            if isinstance(value, bool) or not isinstance(
                value, int if name == "max_boxes" else (int, float)
            ):
                raise ConfigError(f"heatmap parameter {name}={value!r} is not {wanted}")
            if not (math.isfinite(value) and (low <= value if closed else low < value)
                    and value <= high):
                bracket = "[" if closed else "("
                raise ConfigError(
                    f"heatmap parameter {name}={value!r} is outside {bracket}{low}, {high}]"
                )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeatmapConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"heatmap parameters must be an object, got {data!r}")
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown heatmap parameters: {sorted(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class EncoderSpec:
    """What a bundle declares about one ONNX graph: its file and its input/output shapes.
    A dimension is an int (fixed) or a string (dynamic axis name)."""

    file: str
    inputs: dict[str, list[int | str]]
    outputs: dict[str, list[int | str]]

    @classmethod
    def from_dict(cls, data: dict[str, Any], what: str, inputs: set[str],
                  outputs: set[str]) -> EncoderSpec:
        """`inputs`: the names the graph may take; `outputs`: the names it must give."""
        try:
            spec = cls(str(data["file"]), dict(data["inputs"]), dict(data["outputs"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{MANIFEST_NAME}: {what} entry is malformed ({exc})") from None
        for name, dims in (*spec.inputs.items(), *spec.outputs.items()):
            if not isinstance(dims, list) or not all(
                isinstance(d, str) or (isinstance(d, int) and not isinstance(d, bool) and d > 0)
                for d in dims
            ):
                raise BundleError(
                    f"{MANIFEST_NAME}: {what} {name!r} shape {dims!r} is not a list of positive "
                    "integers and axis names"
                )
        if not set(spec.inputs) <= inputs or not outputs <= set(spec.outputs):
            raise BundleError(
                f"{MANIFEST_NAME}: {what} declares inputs {sorted(spec.inputs)} and outputs "
                f"{sorted(spec.outputs)}; this runtime feeds {sorted(inputs)} and reads "
                f"{sorted(outputs)}"
            )
        return spec


@dataclass(frozen=True)
class ModelBundle:
    """A verified bundle on disk. Construct it with `ModelBundle.load`."""

    path: Path
    manifest: dict[str, Any]
    preprocessing: PreprocessConfig
    heatmap: HeatmapConfig
    image_encoder: EncoderSpec
    text_encoder: EncoderSpec
    tokenizer_file: str
    max_length: int
    embed_dim: int
    grid_stride: int
    grid_origin: float  # model coordinate of patch (0, 0)'s receptive-field centre
    manifest_sha256: str
    # "local": unit patch embeddings from the local heads; "global": each location's share of
    # the global embedding (not unit length: their mean is the global embedding)
    heatmap_source: str = "local"
    files: dict[str, str] = field(repr=False, default_factory=dict)

    @property
    def is_demo(self) -> bool:
        return bool(self.manifest.get("demo", False))

    @property
    def notice(self) -> str:
        return DEMO_NOTICE if self.is_demo else RESEARCH_NOTICE

    @property
    def quantization(self) -> str:
        return str(self.manifest.get("quantization", "none"))

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", self.path.name))

    def file(self, name: str) -> Path:
        return self.path / name

    def provenance(self) -> dict[str, Any]:
        """What every output records about the model that produced it."""
        return {
            "name": self.name,
            "bundle": str(self.path),
            "manifest_sha256": self.manifest_sha256,
            "format_version": self.manifest.get("format_version"),
            "quantization": self.quantization,
            "demo": self.is_demo,
            "trained_on": self.manifest.get("trained_on", "unknown"),
            "notice": self.notice,
        }

    @classmethod
    def load(cls, path: str | os.PathLike[str], verify: bool = True) -> ModelBundle:
        """Open and verify a bundle directory; BundleError names what is wrong."""
        root = Path(path)
        if not root.is_dir():
            raise BundleError(f"{root}: model bundle directory not found")
        manifest_path = root / MANIFEST_NAME
        if not manifest_path.is_file():
            raise BundleError(f"{root}: not a model bundle ({MANIFEST_NAME} is missing)")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (ValueError, RecursionError) as exc:  # also undecodable bytes, huge numbers
            raise BundleError(f"{manifest_path}: not valid JSON ({printable(str(exc), 160)})"
                              ) from None
        if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"{manifest_path}: not a {BUNDLE_FORMAT} manifest")
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(
                f"{manifest_path}: bundle format version {version!r}, this runtime reads version "
                f"{FORMAT_VERSION}; re-export the model with a matching lesionloc-export"
            )
        files = manifest.get("files")
        if not isinstance(files, dict) or not files:
            raise BundleError(f"{manifest_path}: the 'files' checksum table is missing")
        checksums: dict[str, str] = {}
        for name, entry in files.items():
            digest = entry.get("sha256") if isinstance(entry, dict) else entry
            if not isinstance(digest, str) or len(digest) != 64:
                raise BundleError(f"{manifest_path}: no valid sha256 for {name}")
            if Path(name).is_absolute() or ".." in Path(name).parts:
                raise BundleError(f"{manifest_path}: file entry {name!r} points outside the bundle")
            checksums[name] = digest
        try:
            image = EncoderSpec.from_dict(manifest["image_encoder"], "image_encoder",
                                          {"pixel_values"}, {"image_embeds", "patch_embeds"})
            text = EncoderSpec.from_dict(
                manifest["text_encoder"], "text_encoder",
                {"input_ids", "attention_mask", "token_type_ids"},
                {"sentence_embeds", "global_embeds"},
            )
            tokenizer = manifest["tokenizer"]
            if not isinstance(tokenizer, dict) or not isinstance(tokenizer.get("file"), str):
                raise ValueError("tokenizer must be an object with a 'file' name")
            preprocessing = manifest["preprocessing"]
            if not isinstance(preprocessing, dict):
                raise ValueError("preprocessing must be an object")
            bundle = cls(
                path=root,
                manifest=manifest,
                preprocessing=PreprocessConfig.from_dict(preprocessing),
                heatmap=HeatmapConfig.from_dict(manifest.get("heatmap", {})),
                image_encoder=image,
                text_encoder=text,
                tokenizer_file=tokenizer["file"],
                max_length=_positive_int(tokenizer, "max_length", "tokenizer.max_length"),
                embed_dim=_positive_int(manifest, "embed_dim"),
                grid_stride=_positive_int(manifest, "grid_stride"),
                grid_origin=_finite(manifest, "grid_origin"),
                manifest_sha256=sha256_file(manifest_path),
                heatmap_source=manifest.get("heatmap_source", "local"),
                files=checksums,
            )
            if bundle.heatmap_source not in ("local", "global"):
                raise ValueError(f"heatmap_source {bundle.heatmap_source!r} is not local or global")
            check_image_size(image.inputs.get("pixel_values", []),
                             bundle.preprocessing.image_size, str(manifest_path))
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise BundleError(f"{manifest_path}: malformed manifest ({exc})") from None
        for required in (image.file, text.file, bundle.tokenizer_file):
            if required not in checksums:
                raise BundleError(f"{manifest_path}: {required} has no checksum entry")
        if verify:
            bundle.verify()
        return bundle

    def verify(self) -> None:
        """Check every listed file exists and has the recorded sha256."""
        for name, expected in self.files.items():
            target = self.path / name
            if not target.is_file():
                raise BundleError(f"{target}: listed in {MANIFEST_NAME} but missing")
            actual = sha256_file(target)
            if actual != expected:
                raise BundleError(
                    f"{target}: checksum mismatch (sha256 {actual[:12]}..., manifest says "
                    f"{expected[:12]}...); the file was modified or the bundle is corrupt"
                )


def _positive_int(data: dict[str, Any], key: str, name: str | None = None) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name or key}={value!r} is not a positive integer")
    return value


def _finite(data: dict[str, Any], key: str) -> float:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{key}={value!r} is not a finite number")
    return float(value)


def check_image_size(shape: list[Any], size: int, source: str) -> None:
    """An image encoder input (N, 1, H, W) must take what preprocessing makes: run on the
    manifest's declaration at load and on the loaded graph (a manifest may declare axis names
    where the graph has fixed sizes)."""
    fixed = [d for d in shape[-2:] if isinstance(d, int)]
    if len(shape) != 4 or any(d != size for d in fixed):
        raise BundleError(
            f"{source}: the image encoder takes pixel_values {shape}, but the bundle's "
            f"preprocessing.image_size is {size}"
        )


def write_manifest(root: str | os.PathLike[str], manifest: dict[str, Any]) -> Path:
    """Write `lesionloc.json` with the sha256 of every other file in `root` (export side)."""
    root = Path(root)
    files: dict[str, dict[str, Any]] = {}
    for target in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = target.relative_to(root).as_posix()
        if rel == MANIFEST_NAME or target.name.startswith("."):
            continue
        files[rel] = {"sha256": sha256_file(target), "bytes": target.stat().st_size}
    body = dict(manifest)
    body["format"] = BUNDLE_FORMAT
    body["format_version"] = FORMAT_VERSION
    body["files"] = files
    out = root / MANIFEST_NAME
    atomic_write_json(out, body)
    return out
