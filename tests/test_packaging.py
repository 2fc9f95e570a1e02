"""What pyproject.toml promises to ship exists in the tree: a package-data pattern that matches
no file builds a wheel silently without it (py.typed was listed for a while and absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_data_pattern_matches_a_file():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]
    missing = [f"{package}/{pattern}" for package, listed in patterns.items()
               for pattern in listed if not any((ROOT / package).glob(pattern))]
    assert not missing, f"pyproject.toml ships files that do not exist: {missing}"

