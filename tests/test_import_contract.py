"""The import contract between the parts (docs/design.md, "Parts, and which imports which"):
the runtime imports no torch, transformers, lesionloc_train or lesionloc_export; training never
imports the export package; the phantom generator and the MIMIC manifest builder load no torch.
Checked twice: statically on the import graph (every import, also inside functions), and by
importing the modules in a fresh interpreter and reading sys.modules (which also sees what a
third-party library pulls in). Each check is shown to fail on a tree made to break it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from source_tree import PACKAGES, ROOT, Module, imports, modules, where, write_tree

# package -> top-level modules it may not import anywhere, not even inside a function
FORBIDDEN = {
    "lesionloc_runtime": ("torch", "transformers", "lesionloc_train", "lesionloc_export"),
    "lesionloc_train": ("lesionloc_export",),
}
# importing any module of these loads no torch: export, evaluation and benchmarks use them
# without a deep-learning framework
TORCH_FREE = ("lesionloc_train.phantoms", "lesionloc_train.mimic")
TORCH = ("torch", "transformers")


def forbidden_imports(root: Path = ROOT) -> list[str]:
    """Every import that FORBIDDEN rules out, as `file:line: importer imports target`."""
    found = []
    for package, banned in FORBIDDEN.items():
        for module in modules(package, root):
            for edge in imports(module):
                if edge.target.split(".")[0] in banned:
                    found.append(f"{where(module, edge.line, root)}: {module.name} imports "
                                 f"{edge.target}")
    return found


def _starting_points(name: str, root: Path) -> list[Module]:
    package = name.split(".")[0]
    return [m for m in modules(package, root) if m.name == name or m.name.startswith(name + ".")]


def torch_at_import(root: Path = ROOT) -> list[str]:
    """For each module of TORCH_FREE, the chain of import-time imports that reaches torch or
    transformers, if one does. Importing `a.b.c` runs `a` and `a.b` first, so parents count."""
    known = {m.name: m for package in PACKAGES for m in modules(package, root)}
    found = []
    for name in TORCH_FREE:
        for start in _starting_points(name, root):
            chain = _chain_to(start.name, known, TORCH)
            if chain:
                found.append(" -> ".join(chain))
    return found


def _chain_to(start: str, known: dict[str, Module], targets: tuple[str, ...]) -> list[str]:
    """Breadth-first over import-time edges from `start`: the first chain that ends in one of
    `targets` (top-level names), or []."""
    came_from: dict[str, str | None] = {start: None}
    queue = [start]
    while queue:
        current = queue.pop(0)
        for nxt in _executed_by(current, known):
            if nxt in came_from:
                continue
            came_from[nxt] = current
            if nxt.split(".")[0] in targets:
                chain = [nxt]
                while came_from[chain[-1]] is not None:
                    chain.append(came_from[chain[-1]])
                return chain[::-1]
            if nxt in known:
                queue.append(nxt)
    return []


def _executed_by(name: str, known: dict[str, Module]) -> list[str]:
    """The modules that importing `name` runs directly: its parent packages, and what its
    import-time imports name (for `from a.b import c`, a.b and a.b.c when c is a module)."""
    parts = name.split(".")
    found = [".".join(parts[:i]) for i in range(1, len(parts))]
    module = known.get(name)
    if module is None:
        return found
    for edge in imports(module):
        if not edge.at_import_time:
            continue
        found.append(edge.target)
        if edge.name is not None and f"{edge.target}.{edge.name}" in known:
            found.append(f"{edge.target}.{edge.name}")
    return found


LOADED = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
top = sys.argv[1].split(".")[0]
print(json.dumps({"loaded": sorted({m.split(".")[0] for m in sys.modules}),
                  "from": sys.modules[top].__file__}))
"""


def _importing(names: list[str], root: Path) -> subprocess.Popen:
    """Import `names` in a fresh interpreter whose path starts at `root`; it prints the
    top-level names in sys.modules afterwards and the file the first name's package came from."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.Popen([sys.executable, "-c", LOADED, *names], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def loaded_violations(root: Path = ROOT) -> list[str]:
    """The contract checked on sys.modules: what importing each part's modules loaded that
    it may not (one interpreter per part, all at once)."""
    checks = [(package, [m.name for m in modules(package, root)], banned)
              for package, banned in FORBIDDEN.items()]
    checks += [(name, [m.name for m in _starting_points(name, root)], TORCH)
               for name in TORCH_FREE]
    running = [(what, banned, _importing(names, root)) for what, names, banned in checks if names]
    found = []
    for what, banned, proc in running:
        out, err = proc.communicate()
        assert proc.returncode == 0, err
        result = json.loads(out)
        assert Path(result["from"]).is_relative_to(root), result["from"]
        found += [f"importing {what} loads {name}" for name in banned if name in result["loaded"]]
    return found


def test_no_part_imports_what_the_contract_forbids():
    found = forbidden_imports()
    assert not found, "\n".join(found)


def test_the_phantom_generator_and_mimic_builder_reach_no_torch_at_import_time():
    found = torch_at_import()
    assert not found, "\n".join(found)


def test_importing_each_part_loads_nothing_the_contract_forbids():
    assert loaded_violations() == []


# -- each check fails on a tree that breaks it -----------------------------------------------

BROKEN = {
    "torch/__init__.py": '"""A stand-in: the real one takes seconds to import."""\n',
    "transformers/__init__.py": "import torch\n",
    "lesionloc_export/__init__.py": "",
    "lesionloc_runtime/__init__.py": "",
    "lesionloc_runtime/late.py": "def load():\n    import torch\n    return torch\n",
    "lesionloc_runtime/dynamic.py": "import importlib\n\nhf = importlib.import_module('transformers')\n",
    "lesionloc_runtime/upward.py": "from lesionloc_train.model import LesionLocModel\n",
    "lesionloc_train/__init__.py": "",
    "lesionloc_train/model.py": "import torch\n\nLesionLocModel = object\n",
    "lesionloc_train/writer.py": "import lesionloc_export\n",
    "lesionloc_train/mimic.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                                "    import torch\n\n\ndef later():\n    import torch\n",
    "lesionloc_train/phantoms/__init__.py": "from . import render\n",
    "lesionloc_train/phantoms/render.py": "from lesionloc_train import model\n",
}


def _broken_tree(root: Path) -> Path:
    return write_tree(root, BROKEN)


def test_the_static_check_finds_every_forbidden_import(tmp_path):
    assert sorted(forbidden_imports(_broken_tree(tmp_path))) == [
        "lesionloc_runtime/dynamic.py:3: lesionloc_runtime.dynamic imports transformers",
        "lesionloc_runtime/late.py:2: lesionloc_runtime.late imports torch",
        "lesionloc_runtime/upward.py:1: lesionloc_runtime.upward imports lesionloc_train.model",
        "lesionloc_train/writer.py:1: lesionloc_train.writer imports lesionloc_export",
    ]


def test_the_import_time_check_follows_the_chain_to_torch(tmp_path):
    # mimic.py imports torch only for type checkers and inside a function: not at import time
    assert sorted(torch_at_import(_broken_tree(tmp_path))) == [
        "lesionloc_train.phantoms -> lesionloc_train.phantoms.render -> lesionloc_train.model "
        "-> torch",
        "lesionloc_train.phantoms.render -> lesionloc_train.model -> torch",
    ]


def test_the_sys_modules_check_sees_what_importing_loads(tmp_path):
    assert loaded_violations(_broken_tree(tmp_path)) == [
        "importing lesionloc_runtime loads torch",
        "importing lesionloc_runtime loads transformers",
        "importing lesionloc_runtime loads lesionloc_train",
        "importing lesionloc_train loads lesionloc_export",
        "importing lesionloc_train.phantoms loads torch",
    ]
