"""Published .pt/.ckpt files are pickles, and a pickle can run any code it names. They are read
with torch's weights-only unpickler; where it refuses a file for its metadata (a Lightning
checkpoint's OmegaConf hyper-parameters, callback states), the names it refused are checked
against a short list of configuration libraries and read again with inert stand-ins in their
place. Nothing a pickle names is ever imported or called; anything else is refused."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from lesionloc_runtime.errors import CheckpointError, printable

# Libraries whose objects a training checkpoint carries as metadata. Their names are replaced
# by `Inert` records; nothing from them is imported.
METADATA_MODULES = ("omegaconf.", "pytorch_lightning.", "lightning.", "lightning_fabric.",
                    "typing.", "pathlib.", "argparse.", "numpy.", "collections.", "enum.")
# Type names used as values (OmegaConf records a container's element and object types)
HARMLESS_TYPES = tuple(f"builtins.{t}" for t in ("dict", "list", "tuple", "set", "frozenset",
                                                   "str", "int", "float", "bool", "bytes", "object"))
# dict subclasses are filled item by item, which the unpickler allows on plain dicts only
DICT_LIKE = ("pytorch_lightning.utilities.parsing.AttributeDict",
             "lightning_fabric.utilities.data.AttributeDict",
             "lightning.fabric.utilities.data.AttributeDict")


class Inert:
    """A stand-in for an object a pickle names: keeps its arguments and state, does nothing."""

    qualname = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> Inert:
        obj = super().__new__(cls)
        obj.args, obj.state = args, None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass  # __new__ kept the arguments; nothing named in a pickle runs

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<{self.qualname}>"


def _plain_dict(*_: Any) -> dict[Any, Any]:
    return {}  # collections.defaultdict(factory): the items follow; the factory is dropped


def _stand_in(name: str) -> Any:
    if name in DICT_LIKE:
        return dict
    if name == "collections.defaultdict":
        return _plain_dict
    return type(name.rsplit(".", 1)[-1], (Inert,), {"qualname": name})


def load_pickle(path: Path, what: str) -> Any:
    """The object in a published torch.save file, as tensors, plain containers and `Inert`
    records. CheckpointError (one line) for a missing, corrupt or unsafe file."""
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} not found")
    mmap = zipfile.is_zipfile(path)  # a large checkpoint's optimizer state stays on disk
    try:
        return _load(path, mmap)
    except pickle.UnpicklingError as exc:
        refused = printable(str(exc).split(". ")[0], 160)
    if not mmap:
        raise CheckpointError(f"{path}: {what}: weights-only loading refuses it ({refused}) and "
                              "it is not a zip checkpoint whose names can be checked; refusing "
                              "to execute it")
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except (ValueError, RuntimeError, pickle.UnpicklingError) as exc:
        raise CheckpointError(f"{path}: {what} is truncated or corrupt ({printable(str(exc), 120)})"
                              ) from None
    unsafe = sorted(n for n in names
                    if not n.startswith(METADATA_MODULES) and n not in HARMLESS_TYPES)
    if unsafe:
        raise CheckpointError(f"{path}: refusing to load {what}: its pickle calls "
                              f"{', '.join(unsafe[:3])}, which is not a tensor, a plain container "
                              "or checkpoint metadata")
    with torch.serialization.safe_globals([(_stand_in(n), n) for n in names]):
        try:
            return _load(path, mmap)
        except pickle.UnpicklingError as exc:
            raise CheckpointError(f"{path}: {what}: cannot read its metadata without executing "
                                  f"it ({printable(str(exc), 160)})") from None


def _load(path: Path, mmap: bool) -> Any:
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError:
        raise
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        raise CheckpointError(f"{path}: truncated or corrupt ({printable(str(exc), 160)})") from None


def plain(value: Any, depth: int = 0) -> Any:
    """OmegaConf containers and nodes (as `Inert` records) as plain dicts, lists and values,
    so hyper-parameters can be read; other records become their class name."""
    if depth > 50:
        return None
    if isinstance(value, dict):
        return {plain(k, depth + 1): plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, depth + 1) for v in value]
    if isinstance(value, Inert):
        state = value.state if isinstance(value.state, dict) else {}
        if "_content" in state:
            return plain(state["_content"], depth + 1)
        if "_val" in state:
            return plain(state["_val"], depth + 1)
        return value.qualname
    if isinstance(value, type) and issubclass(value, Inert):
        return value.qualname
    return value


def lookup(config: Any, dotted: str, default: Any = None) -> Any:
    """config["a"]["b"] for "a.b", or `default` where any part is missing."""
    node = config
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node
