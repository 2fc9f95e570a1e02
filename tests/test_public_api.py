"""The runtime's public API. `from lesionloc_runtime import Localizer, ...` gives the curated names
(loaded on first use, so `import lesionloc_runtime` stays cheap for the CLIs); below that,
every runtime module declares `__all__`, what other modules may use, and the rest is private by
name: a public top-level name outside its module's `__all__`, or a name taken from a runtime
module that its `__all__` does not offer, fails. Each rule is shown to fail on a tree made to
break it."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from source_tree import (
    PACKAGES,
    ROOT,
    Module,
    bound_names,
    declared_all,
    defined_names,
    imports,
    modules,
    where,
    write_tree,
)

import lesionloc_runtime

RUNTIME = "lesionloc_runtime"
# Who takes names from runtime modules, and how strictly: package modules and scripts only
# what `__all__` offers; benchmarks and tests may also reach private names (they measure and
# test internals), and the tests' attribute access (monkeypatching) is not checked.
STRICT = (*PACKAGES, "scripts")

# Public top-level names excused from the rules while a restructuring elsewhere is in flight
# (path -> names). Empty: keep it so, and rename rather than excuse.
PENDING: dict[str, set[str]] = {}


def _all_or_empty(module: Module) -> list[str]:
    return declared_all(module) or []


def missing_all(root: Path = ROOT) -> list[str]:
    """Runtime modules without a literal `__all__`."""
    return [where(m, 1, root) for m in modules(RUNTIME, root) if declared_all(m) is None]


def unbound_in_all(root: Path = ROOT) -> list[str]:
    """Names a module's `__all__` offers that the module does not bind."""
    found = []
    for module in modules(RUNTIME, root):
        bound = bound_names(module)
        submodules = {m.name.rpartition(".")[2] for m in modules(RUNTIME, root)
                      if m.name.rpartition(".")[0] == module.name}
        found += [f"{where(module, 1, root)}: __all__ offers {name}, which it does not bind"
                  for name in _all_or_empty(module) if name not in bound | submodules]
    return found


def public_outside_all(root: Path = ROOT, pending: dict[str, set[str]] | None = None) -> list[str]:
    """Public names defined at a module's top level that its `__all__` leaves out."""
    pending = PENDING if pending is None else pending
    found = []
    for module in modules(RUNTIME, root):
        offered = set(_all_or_empty(module))
        excused = pending.get(module.path.relative_to(root).as_posix(), set())
        for name, line in defined_names(module).items():
            if not name.startswith("_") and name not in offered | excused:
                found.append(f"{where(module, line, root)}: {name} is public but not in "
                             "__all__: add it there if other modules use it, else rename it _"
                             f"{name}")
    return found


def stale_pending(root: Path = ROOT) -> list[str]:
    """Entries of PENDING that are no longer public names outside `__all__`."""
    offenders = set(public_outside_all(root, pending={}))
    listed = [(path, name) for path, names in PENDING.items() for name in sorted(names)]
    return [f"{path}: {name}" for path, name in listed
            if not any(o.startswith(f"{path}:") and f": {name} is public" in o for o in offenders)]


def _user_modules(root: Path) -> list[tuple[Module, bool, bool]]:
    """Every module that may use runtime names, with whether it may take private names and
    whether its attribute access is checked."""
    levels = [*((top, False, True) for top in STRICT), ("benchmarks", True, True),
              ("tests", True, False)]
    return [(m, private, attributes) for top, private, attributes in levels
            if (root / top).is_dir() for m in modules(top, root)]


def _module_aliases(module: Module, runtime: dict[str, Module]) -> dict[str, str]:
    """Local names bound to runtime modules: `import a.b as m`, `from a import b` (a module)."""
    aliases = {}
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in runtime and alias.asname:
                    aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if full in runtime:
                    aliases[alias.asname or alias.name] = full
    return aliases


def _attribute_uses(module: Module, runtime: dict[str, Module]) -> list[tuple[str, str, int]]:
    """(runtime module, attribute, line) for each `alias.name` and `pkg.mod.name` in `module`."""
    aliases = _module_aliases(module, runtime)
    found = []
    for node in ast.walk(module.tree):
        if not isinstance(node, ast.Attribute):
            continue
        chain, base = [node.attr], node.value
        while isinstance(base, ast.Attribute):
            chain.append(base.attr)
            base = base.value
        if not isinstance(base, ast.Name):
            continue
        dotted = [aliases.get(base.id, base.id), *reversed(chain)]
        # the longest prefix that names a runtime module; the next part is the attribute
        for cut in range(len(dotted) - 1, 0, -1):
            owner = ".".join(dotted[:cut])
            if owner in runtime and cut == len(dotted) - 1:
                found.append((owner, dotted[cut], node.lineno))
                break
    return found


def taken_outside_all(root: Path = ROOT) -> list[str]:
    """Names other modules take from a runtime module that its `__all__` does not offer."""
    runtime = {m.name: m for m in modules(RUNTIME, root)}
    found = []
    for user, private_ok, attributes in _user_modules(root):
        uses = [(e.target, e.name, e.line) for e in imports(user)
                if e.target in runtime and e.name is not None and e.target != user.name]
        if attributes:
            uses += [use for use in _attribute_uses(user, runtime) if use[0] != user.name]
        for owner, name, line in uses:
            if f"{owner}.{name}" in runtime or name in _all_or_empty(runtime[owner]):
                continue
            if private_ok and name.startswith("_"):
                continue
            found.append(f"{where(user, line, root)}: takes {name} from {owner}, whose __all__ "
                         "does not offer it")
    return found


def documented_outside_all(root: Path = ROOT) -> list[str]:
    """`from lesionloc_runtime... import names` lines in the README and docs/ whose names the
    module's `__all__` does not offer."""
    runtime = {m.name: m for m in modules(RUNTIME, root)}
    found = []
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        lines = doc.read_text(encoding="utf-8").splitlines() if doc.is_file() else []
        for number, line in enumerate(lines, 1):
            match = re.search(r"from (lesionloc_runtime[\w.]*) import ([\w, ]+)", line)
            if not match or match.group(1) not in runtime:
                continue
            for name in (n.split(" as ")[0].strip() for n in match.group(2).split(",")):
                offered = _all_or_empty(runtime[match.group(1)])
                if name and name not in offered and f"{match.group(1)}.{name}" not in runtime:
                    found.append(f"{doc.relative_to(root).as_posix()}:{number}: {name}")
    return found


def test_every_runtime_module_declares_all():
    assert missing_all() == []


def test_every_name_in_all_is_bound_by_its_module():
    assert unbound_in_all() == []


def test_public_top_level_names_are_in_their_modules_all():
    found = public_outside_all()
    assert not found, "\n".join(found)


def test_every_pending_rename_is_still_needed():
    assert not stale_pending(), f"remove from PENDING, renamed or offered now: {stale_pending()}"


def test_names_taken_from_runtime_modules_are_in_their_all():
    found = taken_outside_all()
    assert not found, "\n".join(found)


def test_the_docs_import_only_what_modules_offer():
    assert documented_outside_all() == []


# -- the curated package root ----------------------------------------------------------------

def test_the_package_root_offers_the_curated_api():
    for name in lesionloc_runtime.__all__:
        value = getattr(lesionloc_runtime, name)
        if name != "__version__":
            home = sys.modules[value.__module__]
            assert name in home.__all__, f"{name} comes from {value.__module__}, not its __all__"
    assert set(lesionloc_runtime.__all__) <= set(dir(lesionloc_runtime))


def test_an_unknown_name_of_the_root_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Localiser'"):
        lesionloc_runtime.Localiser  # noqa: B018
    assert not hasattr(lesionloc_runtime, "localize")


def test_type_checkers_see_the_same_names_the_root_loads_lazily():
    root = next(m for m in modules(RUNTIME) if m.name == RUNTIME)
    block = next(node for node in root.tree.body
                 if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    checked = {(node.module, alias.name) for node in block.body
               if isinstance(node, ast.ImportFrom) for alias in node.names}
    lazy = {(home, name) for name, home in lesionloc_runtime._HOME_OF.items()}
    assert checked == lazy
    assert {name for _, name in lazy} == set(lesionloc_runtime.__all__) - {"__version__"}


def test_importing_the_root_loads_no_submodule_until_a_name_is_used():
    code = ("import json, sys, lesionloc_runtime as r\n"
            "before = [m for m in sys.modules if m.startswith(('lesionloc_runtime.', 'numpy'))]\n"
            "r.Localizer\n"
            "print(json.dumps([before, 'lesionloc_runtime.localizer' in sys.modules]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=ROOT)
    before, loaded_after = json.loads(proc.stdout)
    assert before == [] and loaded_after


def test_the_readme_python_example_runs_on_the_demo_model(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = readme.split("Python API", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert "from lesionloc_runtime import " in example
    examples = ROOT / "lesionloc_runtime" / "demo" / "examples"
    for shown, real in (('"bundles/full-int8"', "None"),
                        ('"study.dcm"', repr(str(examples / "example1.dcm"))),
                        ('"report.txt"', repr(str(examples / "example1.txt")))):
        assert shown in example
        example = example.replace(shown, real)
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {})
    written = json.loads(next(tmp_path.glob("results/*/study.json")).read_text())
    assert written["sentences"] and "phantom" in written["notice"].lower()


# -- each rule fails on a tree that breaks it ------------------------------------------------

BROKEN = {
    "lesionloc_runtime/__init__.py": '__all__ = ["Thing", "missing"]\n'
                                     "from lesionloc_runtime.a import Thing\n",
    "lesionloc_runtime/a.py": '__all__ = ["Thing"]\n\n\nclass Thing:\n    pass\n\n\n'
                              'def helper():\n    pass\n\n\nLIMIT = 3\n_private = 1\n',
    "lesionloc_runtime/b.py": "from lesionloc_runtime.a import LIMIT, Thing\n",
    "lesionloc_train/__init__.py": "",
    "lesionloc_train/c.py": "import lesionloc_runtime.a as a\n\nx = a.helper, a.Thing\n",
    "lesionloc_export/__init__.py": "",
    "tests/test_d.py": "from lesionloc_runtime.a import _private, helper\n",
}


def _broken_tree(root: Path) -> Path:
    return write_tree(root, BROKEN)


def test_a_module_without_all_fails(tmp_path):
    assert missing_all(_broken_tree(tmp_path)) == ["lesionloc_runtime/b.py:1"]


def test_a_name_in_all_that_the_module_lacks_fails(tmp_path):
    assert unbound_in_all(_broken_tree(tmp_path)) == [
        "lesionloc_runtime/__init__.py:1: __all__ offers missing, which it does not bind"]


def test_a_public_helper_outside_all_fails_until_renamed_or_pending(tmp_path):
    found = public_outside_all(_broken_tree(tmp_path), pending={})
    assert [f.split(" is public")[0] for f in found] == [
        "lesionloc_runtime/a.py:8: helper", "lesionloc_runtime/a.py:12: LIMIT"]
    assert public_outside_all(tmp_path, {"lesionloc_runtime/a.py": {"helper", "LIMIT"}}) == []


def test_a_doc_importing_a_name_outside_all_fails(tmp_path):
    _broken_tree(tmp_path)
    (tmp_path / "README.md").write_text("    from lesionloc_runtime.a import Thing, helper\n")
    assert documented_outside_all(tmp_path) == ["README.md:1: helper"]


def test_taking_a_name_outside_all_fails_by_import_and_by_attribute(tmp_path):
    assert taken_outside_all(_broken_tree(tmp_path)) == [
        "lesionloc_runtime/b.py:1: takes LIMIT from lesionloc_runtime.a, whose __all__ does not "
        "offer it",
        "lesionloc_train/c.py:3: takes helper from lesionloc_runtime.a, whose __all__ does not "
        "offer it",
        "tests/test_d.py:1: takes helper from lesionloc_runtime.a, whose __all__ does not offer it",
    ]
