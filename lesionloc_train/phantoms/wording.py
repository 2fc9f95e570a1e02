"""Small pieces of report wording shared by every style: capitalizing, choosing, naming a
location (side and zone) and a size the way a radiologist dictates them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SEVERITY_ADVERB = {"mild": "mildly", "moderate": "moderately", "marked": "markedly"}


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def location(side: str, zone: str, rng: np.random.Generator) -> tuple[str, str]:
    """(noun phrase after "the", adjective phrase before a noun) for a side and zone."""
    if zone == "lingula":
        return pick(rng, ("lingula", "left lingula")), "lingular"
    if side == "bilateral":
        noun, adj = {
            "lower": ("bilateral lower lobes", "bilateral lower lobe"),
            "basal": (pick(rng, ("bilateral lung bases", "lung bases bilaterally")),
                      "bilateral basilar"),
            "middle": ("bilateral mid lung zones", "bilateral mid lung"),
            "upper": ("bilateral upper lobes", "bilateral upper lobe"),
        }.get(zone, (f"bilateral {zone} regions", f"bilateral {zone}"))
        return noun, adj
    table = {
        "upper": [f"{side} upper lobe", f"{side} upper zone", f"{side} upper lung"],
        "lower": [f"{side} lower lobe", f"{side} lower zone", f"{side} lower lung"],
        "middle": ([f"{side} middle lobe", f"{side} mid lung zone", f"{side} midlung"]
                   if side == "right" else [f"{side} mid lung zone", f"{side} midlung"]),
        "apical": [f"{side} apex", f"{side} lung apex"],
        "basal": [f"{side} lung base", f"{side} base"],
        "perihilar": [f"{side} perihilar region", f"{side} perihilar lung"],
        "lateral": [f"{side} lateral hemithorax", f"{side} lateral chest wall"],
    }
    noun = pick(rng, table[zone])
    adj = {"apical": f"{side} apical", "basal": f"{side} basilar",
           "perihilar": f"{side} perihilar", "lateral": f"{side} lateral"}.get(zone, noun)
    if adj.endswith(" zone") and rng.random() < 0.5:
        adj = adj[: -len(" zone")]
    return noun, adj


def size_text(mm: float, rng: np.random.Generator, approx: bool = True) -> str:
    """"7 mm" or "1.5 cm", sometimes with "approx." in front."""
    prefix = "approx. " if approx and rng.random() < 0.12 else ""
    if mm < 15 and rng.random() < 0.6:
        return f"{prefix}{round(mm):d} mm"
    return f"{prefix}{mm / 10:.1f} cm"
