"""Prompts of the benchmarks: the documented defaults per data set and `--prompts FILE`, a JSON
object mapping a category name to the sentence that grounds it."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from lesionloc_runtime.errors import ConfigError, printable

__all__ = ["class_prompts", "load_prompts"]

# Data sets with class labels only need one sentence per class. MS-CXR and the phantoms carry
# their own annotated phrase or report sentence, which is the prompt unless a class prompt is
# given for its category (then every phrase of that category is replaced by it).
_DEFAULT_PROMPTS: dict[str, dict[str, str]] = {
    "phantoms": {},
    "ms-cxr": {},
    "rsna-pneumonia": {"pneumonia": "Findings suggesting pneumonia."},
    "siim-pneumothorax": {"pneumothorax": "There is a pneumothorax."},
    "covid-rural": {"opacity": "Findings suggesting COVID-19 pneumonia."},
}


def load_prompts(path: str | os.PathLike[str] | None) -> dict[str, str]:
    """Read a prompts file: {"category": "sentence", ...}; keys match categories ignoring case."""
    if path is None:
        return {}
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: prompts file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the prompts file ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except (ValueError, RecursionError) as exc:  # a 5,000-digit number, [[[[... too deep
        raise ConfigError(f"{path}: not usable JSON ({printable(str(exc), 80)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: expected a JSON object {{"category": "prompt", ...}}')
    prompts: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{path}: the prompt for {key!r} must be a non-empty string")
        prompts[key.strip().lower()] = value.strip()
    return prompts


def class_prompts(dataset: str, user: Mapping[str, str] | None = None) -> dict[str, str]:
    """Defaults of `dataset` overridden by the user's prompts (keys lower-cased)."""
    merged = dict(_DEFAULT_PROMPTS.get(dataset, {}))
    merged.update({k.lower(): v for k, v in (user or {}).items()})
    return merged
