"""Typed configuration: JSON presets (lesionloc_train/presets/*.json, or any JSON file) parsed
into dataclasses at the boundary. Presets may `extend` another preset; `--set a.b=value`
overrides single fields. Presets are configs, not code paths."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from lesionloc_runtime.errors import ConfigError, printable
from lesionloc_runtime.fileio import is_file
from lesionloc_runtime.preprocess import PreprocessConfig
from lesionloc_runtime.text import SENTENCE_KINDS

PRESET_DIR = Path(__file__).resolve().parent / "presets"


@dataclass
class ImageEncoderConfig:
    """ResNet through transformers' ResNetModel. `backbone` is a hub id or local directory
    (pretrained weights), or None to build from `resnet` (ResNetConfig keyword arguments)."""

    backbone: str | None = "microsoft/resnet-50"
    resnet: dict[str, Any] | None = None
    local_stage: int = 3  # stage 3 = stride 16 (a 28x28 grid at 448 px)
    # Add every deeper stage's projection, upsampled onto the local grid (a feature pyramid):
    # a fine grid (stage 2, stride 8) then also sees the context a lesion's location needs.
    local_fusion: bool = False
    image_size: int = 448
    # ImageNet statistics for pretrained backbones; the grey input is repeated to 3 channels.
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass
class TextEncoderConfig:
    """A BERT-family encoder through AutoModel. `model` is a hub id or local directory, or None
    to build from `bert` (BertConfig keyword arguments) with the tokenizer at `tokenizer`."""

    model: str | None = "emilyalsentzer/Bio_ClinicalBERT"
    bert: dict[str, Any] | None = None
    tokenizer: str | None = None  # tokenizer.json path; None = the model directory's tokenizer
    pooling: str = "mean"  # "mean" over tokens or "cls"
    max_length: int = 64  # tokens per sentence
    report_max_length: int = 256  # tokens of the whole report for the global embedding
    freeze_embeddings: bool = False
    freeze_layers: int = 0  # freeze the first N transformer layers (cheap fine-tuning)


@dataclass
class ModelConfig:
    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    embed_dim: int = 512
    # where sentence heatmaps come from: "local" (the local heads, trained by the local loss),
    # "global" (the global projections applied per location) or "auto" (local unless the local
    # loss is switched off: a global-only model's local heads never learn anything)
    heatmap_source: str = "auto"

    def __post_init__(self) -> None:
        if self.heatmap_source not in ("auto", "local", "global"):
            raise ConfigError(f"model.heatmap_source must be auto, local or global, "
                              f"not {self.heatmap_source!r}")


@dataclass
class LossConfig:
    """L = wg_t2i Lg(v|t) + wg_i2t Lg(t|v) + wl_t2i Ll(v|t) + wl_i2t Ll(t|v) (docs/design.md)."""

    global_t2i: float = 1.0  # Lg(v|t): each report picks its image among the batch's images
    global_i2t: float = 1.0  # Lg(t|v): each image picks its report
    local_t2i: float = 1.0  # Ll(v|t)
    local_i2t: float = 1.0  # Ll(t|v)
    # Ls(v|s): each finding sentence picks its own image (losses.LocalSentenceLoss); 0 = off
    local_sentence: float = 0.0
    init_temperature: float = 0.07  # global InfoNCE temperature (learnable)
    learn_temperature: bool = True
    attention_temperature: float = 0.25  # tau_a: the setting that matters most
    aggregation_gamma: float = 5.0  # gamma of Z(i, b) = 1/gamma log sum_j exp(gamma r_ij^b)
    local_temperature: float = 0.1  # logits = Z / local_temperature
    # sentence kinds in Ll; "other" (exam, technique, recommendation...) describes no region
    local_kinds: tuple[str, ...] = ("finding", "negated", "normal")
    max_sentences: int = 12  # per report, in report order

    def __post_init__(self) -> None:
        bad = set(self.local_kinds) - set(SENTENCE_KINDS)
        if bad:
            raise ConfigError(f"loss.local_kinds has unknown kinds {sorted(bad)}")
        temperatures = (self.init_temperature, self.attention_temperature, self.local_temperature)
        if not all(t > 0 and math.isfinite(t) for t in temperatures):  # NaN <= 0 is False
            raise ConfigError(f"temperatures must be positive numbers, got {temperatures}")
        if all(w == 0 for w in (self.global_t2i, self.global_i2t, self.local_t2i, self.local_i2t,
                                self.local_sentence)):
            raise ConfigError("every loss weight is zero: nothing to train")
        if not (self.local_sentence >= 0 and math.isfinite(self.local_sentence)):
            raise ConfigError(f"loss.local_sentence must be >= 0, got {self.local_sentence}")
        if self.local_sentence > 0 and "finding" not in self.local_kinds:
            raise ConfigError("loss.local_sentence contrasts finding sentences: "
                              "loss.local_kinds must include 'finding'")

    @property
    def uses_local(self) -> bool:
        return self.local_t2i > 0 or self.local_i2t > 0 or self.local_sentence > 0

    @property
    def uses_global(self) -> bool:
        return self.global_t2i > 0 or self.global_i2t > 0


@dataclass
class DataConfig:
    train_manifest: str | None = None
    val_manifest: str | None = None
    cache: str | None = None  # preprocessed image cache directory (lesionloc-train cache)
    batch_size: int = 32  # per process
    workers: int = 4
    augment: bool = True
    max_rows: int | None = None  # use only the first N usable rows (quick runs)


@dataclass
class OptimConfig:
    lr: float = 5e-5
    text_lr: float | None = None  # defaults to lr
    weight_decay: float = 0.05
    warmup_steps: int = 500
    max_steps: int | None = None  # otherwise epochs x steps per epoch
    epochs: int = 50
    grad_accum: int = 1
    clip_grad_norm: float = 1.0
    precision: str = "auto"  # auto | fp32 | bf16 | fp16


@dataclass
class TrainConfig:
    name: str = "full"
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 0
    checkpoint_every: int = 1000  # steps
    keep_checkpoints: int = 3
    log_every: int = 10
    validate_every_epoch: bool = True

    def __post_init__(self) -> None:
        no_local = not self.loss.uses_local
        if self.model.heatmap_source == "auto":
            self.model.heatmap_source = "global" if no_local else "local"
        elif self.model.heatmap_source == "global" and not no_local:
            raise ConfigError("model.heatmap_source=global is for models trained without the local "
                              "loss (set loss.local_t2i and loss.local_i2t to 0, or use local)")

    def preprocess_config(self) -> PreprocessConfig:
        """The runtime preprocessing this model is trained with (carried by the bundle)."""
        return PreprocessConfig(image_size=self.model.image.image_size)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _same_kind(default: Any, value: Any, annotation: str) -> bool:
    """Whether `value` may stand where the field's default is: a number for a float, an int
    (not a bool) for an int, a string for a string, None where the type says `| None`. Fields
    without a default (None) and free-form dicts are left to their consumers."""
    if default is None or isinstance(default, dict):
        return True
    if value is None:
        return "None" in str(annotation)
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        default = getattr(cls(), name) if name in known else None
        if is_dataclass(default) and isinstance(value, dict):
            kwargs[name] = _build(type(default), value, f"{where}.{name}")
        elif is_dataclass(default):  # a section given as a number, a string, null...
            raise ConfigError(f"{where}.{name}: expected an object, got {type(value).__name__}")
        elif isinstance(default, tuple) and isinstance(value, list):
            kwargs[name] = tuple(value)
        elif not _same_kind(default, value, known[name].type):
            raise ConfigError(f"{where}.{name}: expected {type(default).__name__}, got "
                              f"{printable(repr(value), 60)}")
        else:
            kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: json would give inf, a learning rate of inf
        raise ConfigError(f"{text[:40]} is not a finite number")
    return value


def _no_constant(name: str) -> Any:
    raise ConfigError(f"{name} is not a number a config may hold")


def _loads(text: str) -> Any:
    """JSON of a preset or a --set value: numbers must be finite (no NaN, Infinity, 1e999)."""
    return json.loads(text, parse_float=_finite, parse_constant=_no_constant)


def _load_raw(name_or_path: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESET_DIR / f"{name_or_path}.json"
    if not is_file(path):
        available = sorted(p.stem for p in PRESET_DIR.glob("*.json"))
        raise ConfigError(f"preset {name_or_path!r} not found (available: {', '.join(available)})")
    if str(path) in seen:
        raise ConfigError(f"preset {path} extends itself")
    try:
        raw = _loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:  # also undecodable bytes, huge numbers
        raise ConfigError(f"{path}: invalid JSON ({exc})") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a preset must be a JSON object, got {type(raw).__name__}")
    parent = raw.pop("extends", None)
    if parent is not None and not isinstance(parent, str):
        raise ConfigError(f"{path}: 'extends' must name a preset, got {type(parent).__name__}")
    raw.pop("description", None)
    if parent:
        raw = _deep_merge(_load_raw(parent, (*seen, str(path))), raw)
    return raw


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form key.path=value")
    key, text = item.split("=", 1)
    try:
        value = _loads(text)
    except (ValueError, RecursionError):
        value = text  # a bare string
    except ConfigError as exc:
        raise ConfigError(f"override {printable(item, 80)!r}: {exc}") from None
    return key.strip().split("."), value


def load_config(
    presets: str | list[str] | tuple[str, ...], overrides: list[str] | tuple[str, ...] = ()
) -> TrainConfig:
    """One or more presets (tiny, demo, full, or JSON paths; later ones are merged over earlier
    ones, so `["demo", "global_only"]` is the demo model with the global loss only), then
    `key.path=value` overrides."""
    names = [presets] if isinstance(presets, str) else list(presets)
    if not names:
        names = ["full"]
    raw: dict[str, Any] = {}
    for name in names:
        raw = _deep_merge(raw, _load_raw(name))
    if len(names) > 1:
        raw["name"] = "+".join(Path(n).stem for n in names)
    for item in overrides:
        keys, value = parse_override(item)
        node = raw
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {key} is not a section")
        node[keys[-1]] = value
    return _build(TrainConfig, raw, "config")


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    return _build(TrainConfig, data, "config")
