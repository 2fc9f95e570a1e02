"""What each source of bundles fixes about the processing around its graphs (ours, BioViL,
BioViL-T, AFLoc): where the patch grid lies, how text is prepared and pooled, and the
preprocessing and heatmap conventions a card of that architecture must state. A card that
states another source's conventions is refused, so no model runs with another's preprocessing."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lesionloc_runtime.errors import BundleError

__all__ = [
    "ARCHITECTURES",
    "PLACEMENTS",
    "TEXT_POOLINGS",
    "TEXT_PREPARATIONS",
    "GridSpec",
    "TextConfig",
    "check_architecture",
]

PLACEMENTS = ("receptive-field", "cell-centres")
# How the runtime prepares a sentence before tokenizing: "none"; "hi-ml" strips trailing
# "!?." as hi-ml's TextInput does; "afloc" keeps lower-cased \w+ words of sentences of two
# or more words, ASCII only, as AFLoc's process_text does.
TEXT_PREPARATIONS = ("none", "hi-ml", "afloc")
# How the text graph pools tokens into the sentence embedding (it happens inside the graph;
# the card states it): mean over tokens or [CLS] then our projections; CXR-BERT's [CLS]
# projection head; AFLoc's sum of the last four layers over the tokens, / its 97 word slots.
TEXT_POOLINGS = ("mean", "cls", "cls-projection", "afloc-last4-sum")


@dataclass(frozen=True)
class GridSpec:
    """The patch grid: cell (i, j) is centred on model coordinates (origin + j * stride,
    origin + i * stride). "receptive-field": a ResNet stage's cells, centred where their
    receptive fields are (ours: stride 16 or 32, origin 0.5). "cell-centres": the grid tiles
    the model input and each cell sits in the middle of its tile, stride = size / cells,
    origin = stride / 2, which is what F.interpolate(align_corners=False) assumes (hi-ml and
    AFLoc map their similarity grids so)."""

    shape: tuple[int, int]
    stride: float
    origin: float
    placement: str

    @classmethod
    def receptive_field(cls, size: int, stride: int, origin: float = 0.5) -> GridSpec:
        return cls((size // stride, size // stride), float(stride), origin, "receptive-field")

    @classmethod
    def cell_centres(cls, size: int, cells: int) -> GridSpec:
        stride = size / cells
        return cls((cells, cells), stride, stride / 2, "cell-centres")

    @classmethod
    def from_dict(cls, data: Any, size: int) -> GridSpec:
        if not isinstance(data, dict) or set(data) != {"shape", "stride", "origin", "placement"}:
            raise ValueError("grid must be an object of shape, stride, origin and placement")
        shape = data["shape"]
        if (not isinstance(shape, list) or len(shape) != 2
                or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)):
            raise ValueError(f"grid.shape {shape!r} is not two positive integers")
        numbers = [data["stride"], data["origin"]]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                   for v in numbers) or data["stride"] <= 0:
            raise ValueError(f"grid stride {data['stride']!r} and origin {data['origin']!r} "
                             "must be finite numbers, the stride positive")
        grid = cls((shape[0], shape[1]), float(data["stride"]), float(data["origin"]),
                   str(data["placement"]))
        grid.check(size)
        return grid

    def check(self, size: int) -> None:
        """The grid must be where its placement puts it on a `size` model input."""
        if self.placement == "cell-centres":
            want = GridSpec.cell_centres(size, self.shape[1])
            ok = self.shape[0] == self.shape[1] and math.isclose(self.stride, want.stride) \
                and math.isclose(self.origin, want.origin)
        elif self.placement == "receptive-field":
            ok = self.stride.is_integer() and all(n == size // int(self.stride) for n in self.shape)
        else:
            raise ValueError(f"grid.placement {self.placement!r} is not one of {PLACEMENTS}")
        if not ok:
            raise ValueError(f"grid {list(self.shape)} at stride {self.stride:g}, origin "
                             f"{self.origin:g} is not a {self.placement} grid of a {size} px input")

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "stride": self.stride, "origin": self.origin,
                "placement": self.placement}


@dataclass(frozen=True)
class TextConfig:
    preparation: str = "none"
    pooling: str = "mean"

    @classmethod
    def from_dict(cls, data: Any) -> TextConfig:
        if not isinstance(data, dict) or set(data) != {"preparation", "pooling"}:
            raise ValueError("text must be an object of preparation and pooling")
        text = cls(str(data["preparation"]), str(data["pooling"]))
        if text.preparation not in TEXT_PREPARATIONS or text.pooling not in TEXT_POOLINGS:
            raise ValueError(f"text preparation {text.preparation!r} or pooling {text.pooling!r} "
                             f"is not one of {TEXT_PREPARATIONS} and {TEXT_POOLINGS}")
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"preparation": self.preparation, "pooling": self.pooling}


_HI_ML = {
    "preprocessing.method": ("resize-crop",), "preprocessing.resize": (512,),
    "preprocessing.intensity": ("minmax-uint8",), "preprocessing.interpolation": ("pil-bilinear",),
    "grid.placement": ("cell-centres",), "heatmap.similarity": ("cosine",),
    "heatmap.score": ("global-cosine",), "heatmap.smoothing_border": ("reflect",),
    "heatmap.upsampling": ("bilinear",), "text.preparation": ("hi-ml",),
    "text.pooling": ("cls-projection",),
}
# section.key -> the values a card of that architecture may state
ARCHITECTURES: dict[str, dict[str, tuple[Any, ...]]] = {
    "lesionloc": {
        "preprocessing.method": ("letterbox",), "preprocessing.size_rounding": ("round",),
        "preprocessing.intensity": ("percentile", "none"),
        "preprocessing.interpolation": ("area", "linear", "cubic"),
        "grid.placement": ("receptive-field",), "heatmap.similarity": ("cosine", "global-share"),
        "heatmap.smoothing_border": ("replicate",), "heatmap.upsampling": ("cubic",),
        "text.preparation": ("none",), "text.pooling": ("mean", "cls"),
    },
    "biovil": {**_HI_ML, "preprocessing.image_size": (480,)},
    "biovil-t": {**_HI_ML, "preprocessing.image_size": (448,)},
    "afloc": {
        "preprocessing.method": ("letterbox",), "preprocessing.image_size": (224,),
        "preprocessing.intensity": ("uint8",), "preprocessing.interpolation": ("area",),
        "preprocessing.size_rounding": ("floor",), "preprocessing.pad_value": (0.0,),
        "grid.placement": ("cell-centres",), "heatmap.similarity": ("dot",),
        "heatmap.score": ("global-cosine",), "heatmap.smoothing_border": ("reflect",),
        "heatmap.upsampling": ("bilinear",), "text.preparation": ("afloc",),
        "text.pooling": ("afloc-last4-sum",),
    },
}


def check_architecture(architecture: Any, sections: dict[str, dict[str, Any]], where: str) -> None:
    """Refuse a card whose stated conventions are not its architecture's (one line)."""
    if architecture not in ARCHITECTURES:
        raise BundleError(f"{where}: unknown architecture {architecture!r} (this runtime knows "
                          f"{', '.join(ARCHITECTURES)})")
    for key, allowed in ARCHITECTURES[architecture].items():
        section, _, name = key.partition(".")
        value = sections[section].get(name)
        if value not in allowed:
            want = allowed[0] if len(allowed) == 1 else f"one of {list(allowed)}"
            raise BundleError(f"{where}: a {architecture!r} bundle takes {key} {want!r}, the card "
                              f"says {value!r}")
    heat = sections["heatmap"]
    if architecture == "lesionloc" and (heat.get("similarity") == "global-share") != (
            heat.get("score") == "global-cosine"):
        raise BundleError(f"{where}: a lesionloc bundle scores local-attention with cosine "
                          "heatmaps and global-cosine with global-share ones, the card says "
                          f"{heat.get('similarity')!r} and {heat.get('score')!r}")
