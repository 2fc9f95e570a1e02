"""What a phantom film carries besides anatomy and findings, switch by switch, and the report
style: the options a data set is generated with (recorded in generator.json)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from lesionloc_runtime.errors import ConfigError

# "trained": the phrasings and renderings a model is trained on; "heldout": phrasings and one
# rendering variant (the typeface of markers and burned-in text) that training never sees,
# to measure whether a model learned the skill or the generator.
STYLES = ("trained", "heldout")
# Random streams of one study (dataset.study_rng): the image stream draws anatomy, findings and
# detector noise; each optional part draws from its own, so switching one off leaves the rest
# of the film pixel for pixel as it was.
STREAM_IMAGE, STREAM_REPORT, STREAM_STORAGE = 0, 1, 2
STREAM_FILM, STREAM_DEVICES, STREAM_OVERLAYS = 3, 4, 5


@dataclass(frozen=True)
class PhantomOptions:
    """Each switch turns one family of real-film content on or off."""

    markers: bool = True  # laterality markers (L / R lead letters)
    text: bool = True  # burned-in annotations (PORTABLE, AP, SUPINE, dates, initials)
    collimation: bool = True  # collimation edges and rulers
    devices: bool = True  # tubes, lines, pacemaker, ECG electrodes, sternotomy wires
    portable: bool = True  # AP portable geometry and rotation up to 10 degrees
    acquisition: bool = True  # under/over-exposure, grid lines, lower resolution, noise
    style: str = "trained"

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ConfigError(f"phantom style must be one of {', '.join(STYLES)}, "
                              f"not {self.style!r}")

    @classmethod
    def switches(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.name != "style")

    def without(self, names: Iterable[str]) -> PhantomOptions:
        """A copy with the named switches off (unknown names are a ConfigError)."""
        names = [n.strip() for n in names if n.strip()]
        unknown = sorted(set(names) - set(self.switches()))
        if unknown:
            raise ConfigError(f"unknown phantom feature(s) {', '.join(unknown)}; choose from "
                              f"{', '.join(self.switches())}")
        return replace(self, **{n: False for n in names})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def heldout(self) -> bool:
        return self.style == "heldout"


@dataclass(frozen=True)
class StudyStreams:
    """The optional parts' random streams of one study."""

    film: np.random.Generator
    devices: np.random.Generator
    overlays: np.random.Generator

    @classmethod
    def spawned(cls, rng: np.random.Generator) -> StudyStreams:
        """Children of `rng` (spawning does not advance it): for callers that have one stream."""
        film, devices, overlays = rng.spawn(3)
        return cls(film, devices, overlays)
