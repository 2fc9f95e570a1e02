"""The encoders' input/output contract, declared once: the names, dtypes and shapes of what the
runtime feeds a bundle's image and text graphs and reads back. Export names its graphs' inputs
and outputs from it, parity and the torch backend run by it, bundles are validated against it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lesionloc_runtime.errors import BundleError

__all__ = [
    "CARD_NAME",
    "CONTRACT",
    "DYNAMIC_AXES",
    "IMAGE_INPUTS",
    "IMAGE_OUTPUTS",
    "OPTIONAL_TEXT_INPUTS",
    "PACKED_TEXT_INPUTS",
    "TEXT_INPUTS",
    "TEXT_OUTPUTS",
    "EncoderSpec",
    "TensorSpec",
    "dynamic_axes",
    "names",
    "resolve",
]

CARD_NAME = "lesionloc.json"


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output. A dimension is a fixed int or a symbol: "batch" and
    "sequence" stay dynamic in every graph; the others are fixed per bundle."""

    name: str
    dtype: str  # numpy's name; ONNX Runtime reports it as tensor(<onnx type>)
    dims: tuple[int | str, ...]

    @property
    def ort_type(self) -> str:
        return {"float32": "tensor(float)", "int64": "tensor(int64)",
                "int32": "tensor(int32)"}[self.dtype]


DYNAMIC_AXES = ("batch", "sequence", "windows", "tokens")
# pixel_values: one channel in [0, 1], the preprocessed model input; the graph holds the rest
IMAGE_INPUTS = (TensorSpec("pixel_values", "float32", ("batch", 1, "size", "size")),)
IMAGE_OUTPUTS = (
    TensorSpec("image_embeds", "float32", ("batch", "dim")),
    TensorSpec("patch_embeds", "float32", ("batch", "grid_h", "grid_w", "dim")),
)
TEXT_INPUTS = (
    TensorSpec("input_ids", "int64", ("batch", "sequence")),
    TensorSpec("attention_mask", "int64", ("batch", "sequence")),
)
# Fed as zeros when a graph declares it; no graph we export needs it.
OPTIONAL_TEXT_INPUTS = (TensorSpec("token_type_ids", "int64", ("batch", "sequence")),)
# A packed text graph (the exporter's default in fp32 and int8) takes several
# token windows in one row: each window's positions restart at 0, `window_mask` (1 where two
# tokens are of the same window) keeps attention within a window, and `window_pooling`
# (windows x all the run's tokens, rows flattened) holds each window's pooling weights. Its
# outputs have one row per window ("batch" there counts windows). `tokens.TokenBatch.packed`
# builds them.
PACKED_TEXT_INPUTS = (
    TensorSpec("input_ids", "int64", ("batch", "sequence")),
    TensorSpec("position_ids", "int64", ("batch", "sequence")),
    TensorSpec("window_mask", "int32", ("batch", "sequence", "sequence")),
    TensorSpec("window_pooling", "float32", ("windows", "tokens")),
)
TEXT_OUTPUTS = (
    TensorSpec("sentence_embeds", "float32", ("batch", "dim")),
    TensorSpec("global_embeds", "float32", ("batch", "dim")),
)
CONTRACT = {"image": (IMAGE_INPUTS, (), IMAGE_OUTPUTS),
            "text": (TEXT_INPUTS, OPTIONAL_TEXT_INPUTS, TEXT_OUTPUTS),
            "packed-text": (PACKED_TEXT_INPUTS, (), TEXT_OUTPUTS)}


def names(specs: tuple[TensorSpec, ...]) -> tuple[str, ...]:
    return tuple(s.name for s in specs)


def resolve(specs: tuple[TensorSpec, ...], sizes: dict[str, int]) -> dict[str, list[int | str]]:
    """Shapes with the per-bundle symbols replaced by their sizes (dynamic axes kept)."""
    return {s.name: [sizes.get(d, d) if isinstance(d, str) else d for d in s.dims] for s in specs}


def dynamic_axes(kind: str) -> dict[str, dict[int, str]]:
    """torch.onnx.export's dynamic_axes for one encoder."""
    inputs, _, outputs = CONTRACT[kind]
    return {s.name: {i: d for i, d in enumerate(s.dims) if d in DYNAMIC_AXES}
            for s in inputs + outputs}


@dataclass(frozen=True)
class EncoderSpec:
    """What a bundle declares about one ONNX graph: its file and its input/output shapes.
    A dimension is an int (fixed) or a string (dynamic axis name)."""

    file: str
    inputs: dict[str, list[int | str]]
    outputs: dict[str, list[int | str]]

    @classmethod
    def image(cls, file: str, size: int, grid: tuple[int, int], dim: int) -> EncoderSpec:
        sizes = {"size": size, "grid_h": grid[0], "grid_w": grid[1], "dim": dim}
        return cls(file, resolve(IMAGE_INPUTS, sizes), resolve(IMAGE_OUTPUTS, sizes))

    @classmethod
    def text(cls, file: str, dim: int, packed: bool = False) -> EncoderSpec:
        inputs = PACKED_TEXT_INPUTS if packed else TEXT_INPUTS
        return cls(file, resolve(inputs, {}), resolve(TEXT_OUTPUTS, {"dim": dim}))

    @property
    def packed(self) -> bool:
        """A text graph that takes packed windows (PACKED_TEXT_INPUTS)."""
        return "window_pooling" in self.inputs

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "inputs": self.inputs, "outputs": self.outputs}

    @classmethod
    def from_dict(cls, data: dict[str, Any], kind: str) -> EncoderSpec:
        """A card's `image_encoder` or `text_encoder` entry, checked against the contract."""
        what = f"{kind}_encoder"
        try:
            spec = cls(str(data["file"]), dict(data["inputs"]), dict(data["outputs"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{CARD_NAME}: {what} entry is malformed ({exc})") from None
        for name, dims in (*spec.inputs.items(), *spec.outputs.items()):
            if not isinstance(dims, list) or not all(
                isinstance(d, str) or (isinstance(d, int) and not isinstance(d, bool) and d > 0)
                for d in dims
            ):
                raise BundleError(
                    f"{CARD_NAME}: {what} {name!r} shape {dims!r} is not a list of positive "
                    "integers and axis names"
                )
        if kind == "text" and spec.packed:
            kind = "packed-text"
        required, optional, outputs = CONTRACT[kind]
        feedable = set(names(required + optional))
        if kind == "packed-text" and set(spec.inputs) != feedable:
            raise BundleError(f"{CARD_NAME}: {what} declares packed inputs {sorted(spec.inputs)}; "
                              f"a packed text graph takes {sorted(feedable)}")
        if not set(spec.inputs) <= feedable or not set(names(outputs)) <= set(spec.outputs):
            raise BundleError(
                f"{CARD_NAME}: {what} declares inputs {sorted(spec.inputs)} and outputs "
                f"{sorted(spec.outputs)}; this runtime feeds {sorted(feedable)} and reads "
                f"{sorted(names(outputs))}"
            )
        for tensor in required + optional + outputs:
            dims = {**spec.inputs, **spec.outputs}.get(tensor.name)
            if dims is not None and len(dims) != len(tensor.dims):
                raise BundleError(f"{CARD_NAME}: {what} {tensor.name!r} has shape {dims}, the "
                                  f"contract's has {len(tensor.dims)} axes {list(tensor.dims)}")
        return spec

    def dim(self, tensor: str, axis: int) -> int | str:
        return {**self.inputs, **self.outputs}[tensor][axis]

    def check_graph(self, where: str, inputs: dict[str, tuple[str, list[Any]]],
                    outputs: dict[str, tuple[str, list[Any]]]) -> None:
        """The loaded graph's (type, shape) per input and output must be what the card declares
        and the contract's dtypes."""
        contract = {s.name: s for kind in CONTRACT.values() for group in kind for s in group}
        for kind, declared, actual in (("input", self.inputs, inputs),
                                       ("output", self.outputs, outputs)):
            if set(declared) != set(actual):
                raise BundleError(f"{where}: graph {kind}s {sorted(actual)} differ from the "
                                  f"bundle card's {sorted(declared)}")
            for name, dims in declared.items():
                dtype, got = actual[name]
                if name in contract and dtype != contract[name].ort_type:
                    raise BundleError(f"{where}: {kind} {name!r} is {dtype}, the contract says "
                                      f"{contract[name].ort_type}")
                if len(got) != len(dims) or any(
                    isinstance(d, int) and d != g for d, g in zip(dims, got, strict=False)
                ):
                    raise BundleError(f"{where}: {kind} {name!r} has shape {got}, the bundle "
                                      f"card declares {dims}")
