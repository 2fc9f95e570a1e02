"""The engines the latency suites compare, each the runtime's own pipeline (reading, report
parsing, preprocessing, heatmaps, outputs) around other encoders: ONNX Runtime sessions of a
bundle, or the PyTorch eager fp32 modules the bundle was exported from."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lesionloc_runtime.localizer import Localizer
from lesionloc_runtime.outputs import write_study
from lesionloc_runtime.sessions import default_threads

ENCODERS = ("image_encoder", "text_encoder")
# The steps of `Localizer.localize` whose CPU time `one_study` records: a step's name in the
# study's timings and the localizer's method that runs it.
_STEPS = {"preprocess": "_preprocess", "image_encoder": "_encode_preprocessed",
          "text_encoder": "encode_texts", "heatmaps": "_ground_sentences"}


def torch_localizer(checkpoint: Path, max_length: int) -> Localizer:
    """Our checkpoint's modules through the runtime's pipeline."""
    import torch

    from lesionloc_train.checkpoint import load_checkpoint
    from lesionloc_train.torch_backend import torch_localizer as make

    torch.set_num_threads(default_threads())
    ckpt = load_checkpoint(checkpoint)
    return make(ckpt.model, ckpt.config.preprocess_config(), ckpt.tokenizer, max_length)


def published_torch_localizer(kind: str, source: Path, bundle: Path) -> Localizer:
    """A published model's torch modules, built from its published files by the converter's
    own loader (what export traced), behind the fp32 bundle's card: the same preprocessing,
    text preparation, similarity and smoothing as the ONNX engines."""
    import torch

    from lesionloc_export.source import SourceFiles, load_source
    from lesionloc_runtime.bundle import ModelBundle
    from lesionloc_runtime.tokens import SentenceTokenizer
    from lesionloc_train.torch_backend import TorchEncoder

    torch.set_num_threads(default_threads())
    card = ModelBundle.load(bundle)
    work = Path(tempfile.mkdtemp(prefix="lesionloc-bench-"))
    model = load_source(kind, SourceFiles(source, None, source.parent / "bio_clinicalbert"), {},
                        work)
    localizer = Localizer(card, TorchEncoder(model.image_graph, "image"),
                          TorchEncoder(model.text_graph,  # packed as the bundle's graph is
                                       "packed-text" if card.text_encoder.packed else "text"),
                          SentenceTokenizer(card.file(card.tokenizer_file), card.max_length))
    localizer.providers = ["torch-cpu"]
    return localizer


def one_study(localizer: Localizer, image: Path, report: Path, out: Path) -> dict[str, float]:
    """One study as `lesionloc-run` does it: read the DICOM, localize, write the outputs into
    a new folder `out` (as for each study of a batch: replacing an earlier round's files is the
    rerun case, which removes the old study.json and stale files, and ext4 flushes a file
    renamed over another: 4-6 ms slower in a separate script). The sentence cache is emptied
    first: the study's sentences are new to the engine, as a single study's are. Returns the
    phase timings (ms), the CPU time of every thread of the process in the study (`cpu`) and
    in each phase (`cpu_<phase>`: the phase's CPU over its wall time is how many cores it kept
    busy)."""
    localizer.sentence_cache.clear()
    cpu: dict[str, float] = {}
    start, start_cpu = time.perf_counter(), time.process_time()
    # decoding the DICOM is part of the study's time, on the engine's threads as the CLI's
    radiograph = localizer.read_image(image)
    decoded, decoded_cpu = time.perf_counter(), time.process_time()
    with _steps_timed(localizer, cpu):
        result = localizer.localize(radiograph, report)
    start_write, start_write_cpu = time.perf_counter(), time.process_time()
    write_study(result, radiograph, out)
    end_cpu = time.process_time()
    timings = {**result.timings_ms, "read_dicom": (decoded - start) * 1e3,
               "write": (time.perf_counter() - start_write) * 1e3}
    timings["end_to_end"] = timings["read_dicom"] + timings["total"] + timings["write"]
    timings["cpu"] = (end_cpu - start_cpu) * 1e3
    cpu.update(read_dicom=(decoded_cpu - start_cpu) * 1e3, write=(end_cpu - start_write_cpu) * 1e3)
    return timings | {f"cpu_{step}": ms for step, ms in cpu.items()}


@contextmanager
def _steps_timed(localizer: Localizer, cpu: dict[str, float]) -> Iterator[None]:
    """While it lasts, each step of `localizer.localize` adds its CPU time (ms, every thread)
    to `cpu[step]`: the localizer's methods are wrapped on this instance only."""
    def timed(step: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            begin = time.process_time()
            try:
                return method(*args, **kwargs)
            finally:
                cpu[step] = cpu.get(step, 0.0) + (time.process_time() - begin) * 1e3
        return run

    for step, name in _STEPS.items():
        setattr(localizer, name, timed(step, getattr(localizer, name)))
    try:
        yield
    finally:
        for name in _STEPS.values():
            delattr(localizer, name)


def outside(timings: dict[str, float]) -> float:
    """The share of a study's time spent outside the two encoders."""
    return outside_ms(timings) / timings["end_to_end"]


def outside_ms(timings: dict[str, float]) -> float:
    """A study's time outside the two encoders: outside their wall time together where the
    study records it (`encoders`: side by side, each one's own time overlaps the other's)."""
    return timings["end_to_end"] - timings.get("encoders", sum(timings[k] for k in ENCODERS))


def unwritten_ms(timings: dict[str, float]) -> float:
    """A study's time outside the two encoders less its writing (reading the DICOM,
    preprocessing, heatmaps, the rest of `localize`): what a study that wrote nothing would
    still spend besides the encoders, the floor under the goal on time outside them."""
    return outside_ms(timings) - timings["write"]


def unwritten(timings: dict[str, float]) -> float:
    """`unwritten_ms` as a share of a study that wrote nothing."""
    return unwritten_ms(timings) / (timings["end_to_end"] - timings["write"])
