"""Published state dicts into our torch modules by name: every tensor the module needs must be
in the file with its shape, or the error names the file and the tensor (or the group of
tensors) that is missing or wrong."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lesionloc_runtime.errors import CheckpointError


def published_name(ours: str, rename: Sequence[tuple[str, str]]) -> str:
    """Our tensor name -> the published one, through (published prefix, our prefix) pairs."""
    for theirs, mine in rename:
        if ours.startswith(mine):
            return theirs + ours[len(mine):]
    return ours


def _group(names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    prefix = os.path.commonprefix(names)
    prefix = prefix[: prefix.rfind(".") + 1]
    if prefix:
        return f"{len(names)} tensors: {prefix}*"
    return f"{len(names)} tensors: {', '.join(sorted(names)[:3])}, ..."


def expected_tensors(module: nn.Module, rename: Sequence[tuple[str, str]],
                     extra: Mapping[str, tuple[int, ...]] | None = None
                     ) -> dict[str, tuple[str | None, tuple[int, ...]]]:
    """Published name -> (our name or None for a tensor only checked, shape)."""
    wanted: dict[str, tuple[str | None, tuple[int, ...]]] = {
        published_name(k, rename): (k, tuple(v.shape)) for k, v in module.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    for name, shape in (extra or {}).items():
        wanted[name] = (None, tuple(shape))
    return wanted


def load_mapped(module: nn.Module, published: Mapping[str, Any], rename: Sequence[tuple[str, str]],
                what: str, where: Path, extra: Mapping[str, tuple[int, ...]] | None = None) -> None:
    """Fill `module` from `published`; tensors the runtime does not use (other heads, counters,
    buffers) are ignored, `extra` ones only checked."""
    wanted = expected_tensors(module, rename, extra)
    missing = [name for name in wanted if name not in published]
    if missing:
        raise CheckpointError(f"{where}: {what} lack {_group(missing)}")
    state = {}
    for name, (ours, shape) in wanted.items():
        tensor = published[name]
        if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shape:
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise CheckpointError(f"{where}: {what}: tensor {name} is {got}, the architecture's "
                                  f"is {shape}")
        if ours is not None:
            state[ours] = tensor.float()
    module.load_state_dict(state, strict=False)


def random_state(module: nn.Module, rename: Sequence[tuple[str, str]],
                 extra: Mapping[str, tuple[int, ...]] | None = None,
                 seed: int = 0) -> dict[str, torch.Tensor]:
    """`module`'s tensors under their published names, plus random `extra` ones: the layout a
    published file of this architecture has, at random init (tests and benchmarks)."""
    generator = torch.Generator().manual_seed(seed)
    state = {published_name(k, rename): v.detach().clone() for k, v in module.state_dict().items()}
    for name, shape in (extra or {}).items():
        state[name] = torch.randn(shape, generator=generator) * 0.02
    return state


def read_bert_config(snapshot: Path, what: str) -> Any:
    """A transformers BertConfig from a snapshot's config.json (BERT fields only: CXR-BERT's
    model_type and auto_map point at remote code this project never runs)."""
    import json

    from transformers import BertConfig

    path = snapshot / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} configuration not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        fields = {k: v for k, v in data.items() if k in BertConfig().to_dict()
                  and k not in ("architectures", "auto_map", "model_type", "transformers_version")}
        return BertConfig(**fields)
    except (ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path}: not a BERT configuration ({exc})") from None


def read_snapshot_weights(snapshot: Path, what: str) -> tuple[Path, Mapping[str, Any]]:
    """A Hugging Face snapshot's weights: model.safetensors, else pytorch_model.bin (a pickle,
    read weights-only)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from lesionloc_export.sources.pickles import load_pickle

    safetensors, pickled = snapshot / "model.safetensors", snapshot / "pytorch_model.bin"
    if safetensors.is_file():
        try:
            return safetensors, load_file(str(safetensors))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{safetensors}: truncated or corrupt ({exc})") from None
    if pickled.is_file():
        state = load_pickle(pickled, what)
        if not isinstance(state, Mapping):
            raise CheckpointError(f"{pickled}: {what} is not a state dict")
        return pickled, state
    raise CheckpointError(f"{snapshot}: no {what} weights (model.safetensors or pytorch_model.bin)")
