"""A small slice of every fuzzing target (tests/fuzz/, docs/fuzzing.md) through the same child
processes as the long campaigns, and the harness itself: a crash and a hang are named.

The image slice is 1,000 cases on the generated seeds only (stable case numbers); on the
reader before fuzzing they found 14 failures: Rust decoder panics, pydicom's
NotImplementedError on a damaged VR, binary header bytes echoed into messages."""

from __future__ import annotations

import sys

import pytest
from fuzz import (
    bundles,
    dicom_out,
    evaluation,
    flaky,
    harness,
    images,
    manifests,
    reports,
    training,
)

SLICES = {  # target -> cases in the suite: seconds each
    reports: 60,
    manifests: 120,
    bundles: 40,
    dicom_out: 40,
    evaluation: 60,
    training: 90,
}


def test_mutated_images_read_or_are_refused_in_one_line(tmp_path):
    seeds = tmp_path / "seeds"
    images.make_seeds(seeds, real=False)  # generated only: stable case numbers
    assert len(list(seeds.iterdir())) >= 12
    summary = harness.campaign(images.TARGET, seeds, 0, 1000, echo=False)
    assert not summary.problems, "\n".join(summary.problems)
    assert summary.counts["ok"] > 100 and summary.counts["refused ImageReadError"] > 100, \
        summary.counts  # the mutations do both


@pytest.mark.parametrize("module", list(SLICES), ids=lambda m: m.TARGET.name)
def test_fuzzing_slice_finds_no_problem(module, tmp_path):
    seeds = tmp_path / "seeds"
    module.TARGET.make_seeds(seeds)
    summary = harness.campaign(module.TARGET, seeds, 0, SLICES[module], echo=False)
    assert not summary.problems, "\n".join(summary.problems)
    assert len(summary.counts) >= 2, summary.counts  # the cases reach more than one outcome


def test_harness_names_crashes_hangs_chatter_and_bugs(tmp_path):
    summary = harness.campaign(flaky.TARGET, tmp_path, 0, 6, echo=False)
    problems = "\n".join(summary.problems)
    assert summary.counts["ok"] == 2, summary.counts  # cases 0 and 5: it went on after each
    assert "case 1: PROBLEM crash (exit 3)" in problems
    assert "case 2: PROBLEM hang" in problems
    assert "case 3: PROBLEM printed on stderr: a library's chatter" in problems
    assert "case 4: PROBLEM ValueError: a bug" in problems


def test_one_line_error_of_a_command_passes_and_a_traceback_does_not():
    import click

    @click.command()
    @click.argument("what")
    def command(what: str) -> None:
        if what == "refuse":
            click.echo("error: no such file", err=True)
            sys.exit(3)
        raise RuntimeError("bug")

    assert harness.run_cli(command, ["refuse"], {0, 3}) == "exit 3"
    assert harness.run_cli(command, ["crash"], {0, 3}).startswith("PROBLEM RuntimeError")
    assert harness.run_cli(command, [], {0, 3}).startswith("PROBLEM")  # click's usage block

