"""The packages' source read as syntax trees, for the tests that hold the code to its rules:
the public API (`__all__`, private by name), the import contract and the size limits. Every
function takes the repository root, so a test can prove a rule fails on a tree made to break it."""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lesionloc_runtime", "lesionloc_train", "lesionloc_export")


@dataclass(frozen=True)
class Module:
    name: str  # dotted: lesionloc_runtime.imageio.dicom; a package is its __init__.py
    path: Path
    tree: ast.Module
    is_package: bool

    @property
    def package(self) -> str:
        """What a relative import in this module is relative to."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


@dataclass(frozen=True)
class Import:
    """One import statement's edge: `from target import name` or `import target` (name None).
    `at_import_time` is False inside a function body and under `if TYPE_CHECKING:`."""

    importer: str
    target: str
    name: str | None
    line: int
    at_import_time: bool


@functools.cache  # the trees are only read; several rules walk the same ones
def modules(package: str, root: Path = ROOT) -> tuple[Module, ...]:
    """Every module of `package` under `root`, sorted by name."""
    found = []
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found.append(Module(".".join(parts), path, tree, is_package))
    return tuple(found)


def where(module: Module, line: int, root: Path = ROOT) -> str:
    return f"{module.path.relative_to(root).as_posix()}:{line}"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, at_import_time: bool) -> Iterator[tuple[ast.AST, bool]]:
    """Every node below `node` with whether it runs when the module is imported: a class body
    does, a function body and an `if TYPE_CHECKING:` branch do not."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for branch, now in ((child.body, False), (child.orelse, at_import_time)):
                for statement in branch:
                    yield statement, now
                    yield from _walk(statement, now)
            continue
        yield child, at_import_time
        deferred = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield from _walk(child, at_import_time and not deferred)


@functools.cache
def imports(module: Module) -> tuple[Import, ...]:
    """Every import of `module`, relative ones resolved, and calls of
    `importlib.import_module("...")` or `__import__("...")` with a literal name."""
    found = []
    for node, now in _walk(module.tree, True):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            found += [Import(module.name, alias.name, None, line, now) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = module.package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, target] if target else base)
            found += [Import(module.name, target, alias.name, line, now) for alias in node.names]
        elif isinstance(node, ast.Call) and _dynamic_import(node):
            found.append(Import(module.name, node.args[0].value, None, line, now))
    return tuple(found)


def _dynamic_import(call: ast.Call) -> bool:
    func = call.func
    named = (isinstance(func, ast.Name) and func.id == "__import__") or (
        isinstance(func, ast.Attribute) and func.attr == "import_module")
    return named and bool(call.args) and isinstance(call.args[0], ast.Constant) and isinstance(
        call.args[0].value, str)


def top_level(module: Module) -> Iterator[ast.stmt]:
    """The statements at the module's top level, through `if`, `try`, `with` and loops, not
    into functions or classes."""

    def visit(statements: list[ast.stmt]) -> Iterator[ast.stmt]:
        for node in statements:
            yield node
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            for field in ("body", "orelse", "finalbody"):
                yield from visit(getattr(node, field, []))
            for handler in getattr(node, "handlers", []):
                yield from visit(handler.body)

    yield from visit(module.tree.body)


def defined_names(module: Module) -> dict[str, int]:
    """Names a module defines at its top level (functions, classes, assigned names), with the
    line: imported names are not defined here."""
    names: dict[str, int] = {}
    for node in top_level(module):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.setdefault(node.name, node.lineno)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        names.setdefault(name.id, node.lineno)
    return names


def bound_names(module: Module) -> set[str]:
    """Every name bound at the module's top level: defined or imported."""
    names = set(defined_names(module))
    for node in top_level(module):
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names |= {a.asname or a.name for a in node.names}
    return names


def declared_all(module: Module) -> list[str] | None:
    """The module's `__all__` when it is a literal list or tuple of strings, else None."""
    for node in module.tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [
            node.target] if isinstance(node, ast.AnnAssign) and node.value else []
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            if isinstance(node.value, (ast.List, ast.Tuple)) and all(
                    isinstance(e, ast.Constant) and isinstance(e.value, str)
                    for e in node.value.elts):
                return [e.value for e in node.value.elts]
            return None
    return None


def functions(module: Module) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every def with its qualified name (`Class.method`, `outer.<locals>.inner`), methods and
    nested defs included."""

    def visit(node: ast.AST, prefix: str) -> Iterator[tuple[str, ast.AST]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                yield name, child
                yield from visit(child, f"{name}.<locals>.")
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, f"{prefix}{child.name}.")
            else:
                yield from visit(child, prefix)

    yield from visit(module.tree, "")  # type: ignore[misc]


def function_length(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from `def` to the last line of the body (decorators not counted)."""
    return node.end_lineno - node.lineno + 1


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write `files` (path relative to `root` -> text) under `root`: a made-up tree for the
    tests that show a rule failing. Returns `root`."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root
