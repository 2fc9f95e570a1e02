"""One module of errors and exit codes: every LesionlocError class and every exit code of the
packages lives in lesionloc_runtime/errors.py, and the README's table is its output."""

from __future__ import annotations

import ast
from pathlib import Path

from lesionloc_runtime import errors

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lesionloc_runtime", "lesionloc_train", "lesionloc_export")
ERRORS_FILE = ROOT / "lesionloc_runtime" / "errors.py"


def package_trees() -> list[tuple[Path, ast.Module]]:
    files = sorted(f for package in PACKAGES for f in (ROOT / package).rglob("*.py"))
    return [(f, ast.parse(f.read_text(encoding="utf-8"))) for f in files if f != ERRORS_FILE]


def all_subclasses(cls: type) -> set[type]:
    """The project's subclasses (a test may define its own)."""
    found = {c for c in cls.__subclasses__() if c.__module__.startswith(PACKAGES)}
    return found.union(*(all_subclasses(c) for c in found)) if found else found


def test_readme_exit_code_table_is_the_errors_module_output():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert errors.exit_code_table() in readme, (
        "README's exit-code table differs from lesionloc_runtime/errors.py: paste the output "
        "of `python -m lesionloc_runtime.errors`")


def test_the_table_lists_every_error_class_and_its_code():
    rows = {(row.code, row.error) for row in errors.exit_codes()}
    classes = all_subclasses(errors.LesionlocError)
    assert classes == set(errors.ERROR_CLASSES)
    assert {(c.exit_code, c.__name__) for c in classes} <= rows
    assert {(errors.EXIT_OK, ""), (errors.EXIT_STUDIES_FAILED, ""),
            (errors.EXIT_INTERRUPTED, "")} <= rows
    assert all(row.meaning and "\n" not in row.meaning for row in errors.exit_codes())


def test_no_error_class_is_defined_outside_the_errors_module():
    names = {cls.__name__ for cls in all_subclasses(errors.LesionlocError)} | {"LesionlocError"}
    elsewhere = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
        for path, tree in package_trees() for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any(getattr(base, "id", getattr(base, "attr", None)) in names for base in node.bases)
    ]
    assert not elsewhere, elsewhere


def test_no_exit_code_is_a_bare_number_outside_the_errors_module():
    """`sys.exit(3)` or `exit_code = 3` elsewhere would be a code the table does not show."""
    found = []
    for path, tree in package_trees():
        for node in ast.walk(tree):
            literal = None
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "exit"
                    and node.args and isinstance(node.args[0], ast.Constant)):
                literal = node.args[0]
            elif isinstance(node, ast.Assign) and any(
                    getattr(t, "id", getattr(t, "attr", None)) == "exit_code" for t in node.targets
            ) and isinstance(node.value, ast.Constant):
                literal = node.value
            if literal is not None:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, found
