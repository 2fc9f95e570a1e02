"""BENCHMARKS.md is generated from benchmark JSON: the generator reads pytest-benchmark's
format, computes the goals from the numbers and never invents one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmarks_report.py"


def _report(results: Path, out: Path) -> str:
    subprocess.run([sys.executable, str(SCRIPT), "--results", str(results), "--out", str(out)],
                   check=True, capture_output=True)
    return out.read_text()


def _bench(name, params, extra, median):
    return {"group": None, "name": f"{name}[{params}]", "fullname": f"benchmarks/x.py::{name}[{params}]",
            "params": {}, "param": params, "extra_info": extra, "options": {},
            "stats": {"median": median, "mean": median, "min": median, "rounds": 1}}


def _end_to_end(int8_s: float, torch_s: float, outside: float) -> list[dict]:
    """The end-to-end benchmark's two engines at these medians (s), 1 ms a step."""
    timings = {"read": 1, "preprocess": 1, "image_encoder": 1, "text_encoder": 1, "heatmaps": 1,
               "total": 4, "write": 1}
    return [_bench("test_end_to_end_reference_study", engine,
                   {"engine": engine, "end_to_end_ms": t * 1e3, "outside_encoders_fraction": outside,
                    "timings_ms": timings, "image": "2048x2048", "sentences": 8, "findings": 5}, t)
            for engine, t in (("ort-int8", int8_s), ("torch-fp32", torch_s))]


def _write_run(path: Path, kind: dict, commit: str, when: str, benches: list) -> None:
    """One pytest-benchmark JSON file of runs on a CPU of `kind`."""
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"machine_info": {"cpu_kind": kind}, "commit_info": {"id": commit},
                                "datetime": when, "benchmarks": benches}))


def test_report_computes_goals_from_the_json(tmp_path):
    scores = {"pointing_game": 0.7, "cnr": 1.6, "miou": 0.3, "iou": 0.2, "dice": 0.3, "auroc": 0.9,
              "precision": 0.2, "recall": 0.5}
    timings = {"read": 10, "preprocess": 5, "image_encoder": 100, "text_encoder": 50, "heatmaps": 10,
               "total": 175, "write": 25}
    benches = [
        _bench("test_end_to_end_reference_study", "ort-int8",
               {"engine": "ort-int8", "timings_ms": timings, "end_to_end_ms": 200,
                "outside_encoders_fraction": 0.25, "image": "2048x2048", "sentences": 8, "findings": 5},
               0.2),
        _bench("test_end_to_end_reference_study", "torch-fp32",
               {"engine": "torch-fp32", "timings_ms": timings, "end_to_end_ms": 900,
                "outside_encoders_fraction": 0.1, "image": "2048x2048", "sentences": 8, "findings": 5},
               0.9),
        _bench("test_model_accuracy", "int8-full",
               {"kind": "model", "variant": "full", "precision": "int8", "overall": scores,
                "by_finding": {"nodule": scores}, "sentences": 10, "images": 5, "grid": 20,
                "best_shift_patches": [0.0, 0.25], "pointing_game_at_best_shift": 0.72,
                "pointing_game_unshifted": 0.7}, 1.0),
        _bench("test_baseline_accuracy", "text_prior",
               {"kind": "baseline", "variant": "text_prior", "overall": dict(scores, pointing_game=0.4),
                "by_finding": {"nodule": scores}, "sentences": 10, "images": 5}, 1.0),
    ]
    results = tmp_path / "results"
    results.mkdir()
    (results / "run.json").write_text(json.dumps({
        "machine_info": {"cpu": {"brand_raw": "Test CPU", "count": 2}}, "commit_info": {"id": "abc"},
        "datetime": "2026-11-27T00:00:00", "version": "5", "benchmarks": benches}))
    text = _report(results, tmp_path / "BENCHMARKS.md")
    assert "| End to end >= 4x faster than PyTorch eager fp32 (paired rounds) | 4.500 | met |" in text
    assert "| Full loss pointing game >= 0.75 | 0.700 | NOT met |" in text
    assert "| Full loss pointing game on nodules >= 0.20 | 0.700 | met |" in text
    assert "| ... and >= 0.10 above the text prior | 0.700 vs 0.400 | met |" in text
    assert "| Full beats global-only by >= 0.30 PG | – | not measured |" in text
    assert "| Held-out style: PG within 0.05 of the trained style | – | not measured |" in text
    assert "| Time outside the encoders <= 20% of the study | 0.250 | NOT met |" in text
    assert "| Time outside the encoders <= 15 ms (AVX-512 CPU) | – | not measured |" in text
    # a run from before the benchmark recorded the study's time besides its writing
    assert ("| ... in a study that wrote nothing (reading, preprocessing, heatmaps): <= 20% | – | "
            "not measured |") in text
    assert "Test CPU" in text and "(+0.00, +0.25)" in text
    assert "Not measured in this run (no bundle): full loss, fp32; global-only loss, int8;" in text
    assert "no GPU run is recorded yet" in text


def test_report_shows_what_the_gpu_script_recorded(tmp_path):
    results = tmp_path / "results"
    folder = results / "gpu-20260101-test"
    folder.mkdir(parents=True)
    (folder / "env.txt").write_text("Thu Jan 1\nLinux vm\n16\nname, memory.total [MiB]\n"
                                    "NVIDIA Test GPU, 1000 MiB, 1\n"
                                    "torch 9.9.9+cu99 cuda 99 NVIDIA Test GPU\n")
    (folder / "stages.txt").write_text("gpu_check rc=0 60 s\nsynth rc=0 50 s (from the start)\n"
                                       "fp16-torchrun rc=3 40 s\ndemo rc=0 150 s\n")
    run = {"ddp": False, "precision": "bf16", "batch_size": 64, "pairs_per_s": 321.4,
           "peak_memory_gib": 12.34}
    (folder / "gpu_check.json").write_text(
        json.dumps({"image_size": 448, "runs": [run, {**run, "ddp": True}]}))
    (folder / "gpu.log").write_text("phantoms: 100%\nWrote 5000 studies of 512x512 (train 4000)\n")
    (folder / "demo-metrics.jsonl").write_text(
        '{"step": 10, "loss": 9.0}\n{"step": 20, "val/pointing_game": 0.5}\n{"step": 1500, "loss": 6.25}\n')
    metrics = {"pointing_game": 0.61, "cnr": 2.5, "miou": 0.13, "auroc": 0.95}
    (folder / "phantoms-gpu-trained.json").write_text(json.dumps({"micro": {"metrics": metrics}}))
    cpu_run = {"steps": 1500, "epochs": 12, "seconds": 5000.0, "mean_pairs_per_s": 9.0, "last_loss": 6.5}
    (results / "demo-training.json").write_text(json.dumps(
        {"machine": "Test CPU", "command": "x", "summary": "y", "variants": {"full": cpu_run}}))
    text = _report(results, tmp_path / "BENCHMARKS.md")
    assert "Machine: NVIDIA Test GPU (torch 9.9.9+cu99), 16 CPU cores." in text
    assert "| one GPU | bf16 | 64 | 321 | 12.3 GiB |" in text
    assert "| DDP, 1 process (torchrun path) | bf16 | 64 | 321 | 12.3 GiB |" in text
    assert "fp16-torchrun FAILED (rc 3) in 40 s" in text and "synth passed in 50 s" in text
    assert ("320 px input, 5,000 phantoms, 1,500 steps) trained in 150 s (on the CPU recipe's "
            "machine, Test CPU: 5,000 s), last loss 6.250") in text
    assert "one sample of run-to-run spread" not in text  # only one of the two models scored
    assert "| GPU | 0.610 | 2.500 | 0.130 | 0.950 |" in text and "| CPU |" not in text


def test_report_lists_every_kept_end_to_end_run(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    for name, int8, torch in (("a.json", 0.5, 1.0), ("b.json", 0.25, 1.0)):
        benches = [_bench("test_end_to_end_reference_study", engine,
                          {"engine": engine, "end_to_end_ms": t * 1e3, "outside_encoders_fraction": 0.2,
                           "timings_ms": {"read": 1, "preprocess": 1, "image_encoder": 1, "text_encoder": 1,
                                          "heatmaps": 1, "total": 4, "write": 1},
                           "image": "2048x2048", "sentences": 8, "findings": 5}, t)
                   for engine, t in (("ort-int8", int8), ("torch-fp32", torch))]
        machine = {"cpu": {"brand_raw": "Old CPU"}} if name == "a.json" else {
            "cpu": {"brand_raw": "New CPU"},
            "cpu_kind": {"model": "New CPU", "int8_flags": ["avx2", "avx512_vnni"]}}
        (results / name).write_text(json.dumps({
            "machine_info": machine, "commit_info": {"id": f"{name[0] * 7}xyz"}, "datetime": name,
            "benchmarks": benches}))
    text = _report(results, tmp_path / "BENCHMARKS.md")
    # each run names its CPU, and says when it did not record the int8 flags
    assert ("| a.json | Old CPU (int8 flags not recorded) | aaaaaaa | 500 | 1000 | 2.0x | 20% | "
            "– | – |") in text
    assert ("| b.json | New CPU (int8 flags: avx2 avx512_vnni) | bbbbbbb | 250 | 1000 | 4.0x | "
            "20% | – | – |") in text


def test_report_says_how_many_cores_each_phase_kept_busy(tmp_path):
    """A run that recorded each phase's CPU time shows it over the phase's wall time; a run
    that did not shows no such line."""
    results = tmp_path / "results"
    results.mkdir()
    timings = {"read": 0.5, "preprocess": 4, "image_encoder": 30, "text_encoder": 20,
               "heatmaps": 5, "total": 60, "read_dicom": 8, "write": 16, "end_to_end": 84,
               "cpu": 147, "cpu_read_dicom": 8, "cpu_preprocess": 6, "cpu_image_encoder": 59,
               "cpu_text_encoder": 38, "cpu_heatmaps": 5, "cpu_write": 24}
    benches = [_bench("test_end_to_end_reference_study", "ort-int8",
                      {"engine": "ort-int8", "end_to_end_ms": 84, "outside_encoders_fraction": 0.4,
                       "timings_ms": timings, "image": "2048x2048", "sentences": 8,
                       "findings": 5}, 0.084)]
    _write_run(results / "run.json", {"model": "CPU", "int8_flags": []}, "abcdefg", "2026-12-05",
               benches)
    text = _report(results, tmp_path / "BENCHMARKS.md")
    assert ("ort-int8: reading 1.00, preprocessing 1.50, image encoder 1.97, text encoder 1.90, "
            "heatmaps 1.00, writing 1.50; the study 1.75.") in text
    for key in [k for k in timings if k.startswith("cpu_")]:
        del timings[key]
    _write_run(results / "run.json", {"model": "CPU", "int8_flags": []}, "abcdefg", "2026-12-05",
               benches)
    assert "Cores kept busy" not in _report(results, tmp_path / "BENCHMARKS.md")


def test_paired_rounds_give_the_speed_up_goal(tmp_path):
    """Engines measured one after the other can land in different phases of a shared
    machine's speed; when the run has paired rounds, the goal is their median ratio."""
    results = tmp_path / "results"
    results.mkdir()
    benches = _end_to_end(0.4, 1.0, 0.2)
    paired = _bench("test_speedup_in_paired_rounds", "", {
        "rounds": 3, "speedups": [2.9, 3.1, 3.3], "speedup_median": 3.1, "int8_ms_median": 300,
        "torch_ms_median": 930, "outside_encoders_fraction": 0.26}, 0.3)
    paired["name"] = "test_speedup_in_paired_rounds"
    paired["fullname"] = "benchmarks/x.py::test_speedup_in_paired_rounds"
    (results / "run.json").write_text(json.dumps({
        "machine_info": {}, "commit_info": {"id": "c" * 10}, "datetime": "2026-11-28T00:00:00",
        "benchmarks": [*benches, paired]}))
    text = _report(results, tmp_path / "BENCHMARKS.md")
    assert "| End to end >= 4x faster than PyTorch eager fp32 (paired rounds) | 3.100 | NOT met |" in text
    assert "Median speed-up 3.10x (rounds: 2.90, 3.10, 3.30)" in text
    assert "| ort-int8 | 400 |" in text and "2.5x |" in text  # the separate medians stay shown


def test_report_shows_the_write_time_of_both_layouts(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    timings = {"read": 1, "preprocess": 1, "image_encoder": 1, "text_encoder": 1, "heatmaps": 1,
               "total": 4, "write": 1}
    benches = [_bench("test_end_to_end_reference_study", "ort-int8",
                      {"engine": "ort-int8", "end_to_end_ms": 10, "outside_encoders_fraction": 0.2,
                       "timings_ms": timings, "image": "2048x2048", "sentences": 8, "findings": 5},
                      0.01),
               {**_bench("test_write_time_of_the_reference_study_by_layout", "", {
                   "rounds": 15, "image": "2048x2048", "sentences": 8, "grounded": 5,
                   "overlays_ms_median": 41.2, "page_ms_median": 20.6,
                   "overlays_cpu_ms_median": 60.4, "page_cpu_ms_median": 30.1,
                   "overlays_over_page_median": 1.98}, 0.06),
                "name": "test_write_time_of_the_reference_study_by_layout"}]
    (results / "run.json").write_text(json.dumps({
        "machine_info": {"cpu": {"brand_raw": "Test CPU", "count": 2}}, "commit_info": {"id": "abc"},
        "datetime": "2026-12-03T00:00:00", "benchmarks": benches}))
    text = _report(results, tmp_path / "BENCHMARKS.md")
    assert "| overlays + summary (schema 1's default, now `--overlays`) | 41 | 60 |" in text
    assert "| study page (the default) | 21 | 30 |" in text
    assert "Median ratio of the paired rounds: 1.98x." in text


def test_report_shows_the_text_encoder_packed_and_padded(tmp_path):
    results = tmp_path / "results"
    kind = {"model": "Test Xeon", "int8_flags": ["avx2", "amx_int8"], "logical_cpus": 2}
    layouts = [_bench("test_text_encoder_layouts", engine, {
        "engine": engine, "sentences": 8, "tokens": 65, "packed_runs": 1, "padded_runs": 2,
        "packed_ms": packed, "padded_ms": padded, "sentence_cosine_min": cosine}, 0.05)
        for engine, packed, padded, cosine in (("pytorch", 73.84, 103.2, 1.0),
                                               ("int8", 17.66, 23.61, 0.999851))]
    _write_run(results / "run.json", kind, "abc", "2026-12-05T15:40:00",
               _end_to_end(0.09, 0.3, 0.4) + layouts)
    text = _report(results, tmp_path / "BENCHMARKS.md")
    assert "8 sentences (65 tokens) packed in one sequence" in text
    rows = [line for line in text.splitlines() if line.startswith(("| int8 |", "| pytorch |"))]
    assert rows == ["| int8 | 17.7 | 23.6 | 1 / 2 | 0.99985 |",  # int8 first, as in every table
                    "| pytorch | 73.8 | 103.2 | 1 / 2 | 1.00000 |"]


def test_report_shows_imported_models_and_batch_throughput_against_pytorch(tmp_path):
    kind = {"model": "Xeon", "int8_flags": ["avx2", "avx512f", "avx512_vnni"]}
    timings = {"read": 1, "preprocess": 1, "image_encoder": 10, "text_encoder": 5, "heatmaps": 1,
               "total": 18, "write": 2, "end_to_end": 20}
    engines = {e: {"end_to_end_ms": ms, "timings_ms": timings, "outside_encoders_fraction": 0.25,
                   "outside_encoders_ms": 5.0, "speedup_median": speed}
               for e, ms, speed in (("ort-int8", 20, 4.5), ("ort-fp32", 40, 2.2),
                                    ("torch-fp32", 90, 1.0))}
    # the image encoder on OpenVINO beside the text encoder: the two overlap
    engines["ov-int8"] = {**engines["ort-int8"], "timings_ms": {**timings, "encoders": 11}}
    benches = [_bench("test_published_model_end_to_end_in_paired_rounds", "biovil-t",
                      {"kind": "biovil-t", "rounds": 5, "engines": engines, "grid": [14, 14],
                       "image_size": 448, "cpu_kind": kind}, 1.0)]
    for engine, rate in (("ort-int8", 6.0), ("torch-fp32", 1.0), ("torch-fp32-no-cache", 0.8)):
        benches.append(_bench("test_batch_of_realistic_studies", engine, {
            "engine": engine, "studies": 200, "studies_per_s": rate, "cpu_s_per_study": 0.3,
            "threads": 2, "sentence_cache_hits": 700, "sentence_cache_misses": 800,
            "cpu_kind": kind}, 10.0))
    # two workers: no CPU time of their own (nor cache counts in runs before the shared store);
    # the goal takes each side's fastest
    for engine, rate in (("ort-int8-2-workers", 7.0), ("torch-fp32-2-workers", 1.25)):
        benches.append(_bench("test_batch_of_realistic_studies", engine, {
            "engine": engine, "studies": 200, "studies_per_s": rate, "cpu_s_per_study": None,
            "threads": 1, "workers": 2, "sentence_cache_hits": None,
            "sentence_cache_misses": None, "cpu_kind": kind}, 10.0))
    results = tmp_path / "results"
    _write_run(results / "run.json", kind, "abc", "2026-12-03T00:00:00", benches)
    text = _report(results, tmp_path / "BENCHMARKS.md")
    assert "| biovil-t | 448 px, grid 14x14 | ort-int8 | 20 | 10 | 5 | 5 | 25% | 4.5x |" in text
    assert ("Encoders run side by side (`--providers openvino` on two or more threads: each "
            "column is that encoder's own time, and the time outside the encoders is outside "
            "both together): biovil-t ov-int8 11 ms together against 10 + 5.") in text
    assert "| PyTorch eager fp32, sentence cache, pipelined | 2026-12-03 | 1.00 |" in text
    assert ("| ONNX Runtime int8, sentence cache, pipelined | 2026-12-03 | 6.00 | 0.300 | "
            "700 / 800 | 6.0x | 7.5x |") in text
    assert ("| ONNX Runtime int8, sentence cache, 2 workers of 1 thread (`--workers 2`), "
            "their start included | 2026-12-03 | 7.00 | – | – | 5.6x | – |") in text
    assert ("| Batch throughput on realistic reports >= 5x PyTorch (the fastest way each runs "
            "it) | 5.600 | met |") in text
    assert "Xeon (int8 flags: avx2 avx512f avx512_vnni)" in text
    assert "more than one kind of CPU" not in text

    # a later run of one row on another kind of CPU: the table says so, the goal gets no ratio
    amd = {"model": "EPYC", "int8_flags": ["avx2"]}
    _write_run(results / "run2.json", amd, "def", "2026-12-04T00:00:00", [_bench(
        "test_batch_of_realistic_studies", "torch-fp32-2-workers",
        {**benches[-1]["extra_info"], "cpu_kind": amd}, 10.0)])
    text = _report(results, tmp_path / "BENCHMARKS.md")
    assert "These rows come from more than one kind of CPU" in text
    assert "5.600" not in text
    # a row's ratio only against PyTorch's row of the same day: the machine's speed moves
    assert ("their start included | 2026-12-03 | 7.00 | – | – | – | – |") in text
    assert "| PyTorch eager fp32, sentence cache, 2 workers of 1 thread, their start included | " \
           "2026-12-04 | 1.25 |" in text
    assert "| 6.0x | 7.5x |" in text  # the rows of one day still compare


def test_report_shows_a_compressed_study_by_decoder(tmp_path):
    kind = {"model": "Xeon", "int8_flags": ["avx2"]}
    benches = [_bench("test_compressed_film_study_by_decoder", "jpeg2000", {
        "syntax": "jpeg2000", "film": "p000006.dcm", "rounds": 7, "threads": 2,
        "chosen_end_to_end_ms_median": 200.0, "pydicom_end_to_end_ms_median": 300.0,
        "chosen_read_dicom_ms_median": 120.0, "pydicom_read_dicom_ms_median": 220.0,
        "cpu_kind": kind}, 0.5)]
    results = tmp_path / "results"
    _write_run(results / "run.json", kind, "abc", "2026-12-05T00:00:00", benches)
    text = _report(results, tmp_path / "BENCHMARKS.md")
    assert "| jpeg2000 (p000006.dcm, 2 threads) | 200.0 | 300.0 | 120.0 | 220.0 | 1.50x |" in text


def _accuracy_run(results: Path, name: str, when: str, pg: float, robustness: bool = False,
                  variant: str = "full") -> None:
    scores = {"pointing_game": pg, "cnr": 3.1, "miou": 0.3, "iou": 0.2, "dice": 0.3, "auroc": 0.9}
    model = _bench("test_model_accuracy", f"int8-{variant}", {
        "kind": "model", "variant": variant, "precision": "int8", "overall": scores,
        "by_finding": {"nodule": scores}, "sentences": 10, "images": 5, "grid": 40,
        "best_shift_patches": [0.0, 0.0], "pointing_game_at_best_shift": pg,
        "pointing_game_unshifted": pg}, 1.0)
    benches = [model]
    if robustness:
        summary = {"overall": scores, "by_finding": {"nodule": scores}, "sentences": 10, "images": 5}
        benches.append(_bench("test_robustness", "int8", {
            "kind": "robustness", "variant": "full", "precision": "int8",
            "sets": {"standard": summary, "clean": summary, "heldout": summary},
            "pointing_game": {"standard": pg, "clean": pg + 0.02, "heldout": pg - 0.08},
            "clean_minus_standard": 0.02, "standard_minus_heldout": 0.08, "peaks": 100,
            "peaks_on_marker_text": 1, "share_on_marker_text": 0.01,
            "peaks_on_films_with_marker_text": 50, "share_on_marker_text_where_present": 0.02,
            "peaks_on_devices": 0, "share_on_devices": 0.0, "peaks_on_films_with_devices": 20,
            "share_on_devices_where_present": 0.0}, 1.0))
    (results / name).write_text(json.dumps({
        "machine_info": {}, "commit_info": {"id": "d" * 10}, "datetime": when,
        "benchmarks": benches}))


def test_robustness_goals_come_from_the_newest_accuracy_run(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    _accuracy_run(results, "old.json", "2026-11-01T00:00:00", 0.5, robustness=True)
    _accuracy_run(results, "new.json", "2026-12-01T00:00:00", 0.8, robustness=True)
    text = _report(results, tmp_path / "BENCHMARKS.md")
    assert "| Full loss pointing game >= 0.75 | 0.800 | met |" in text
    assert "| Without markers, text and devices: PG within 0.03 | 0.020 | met |" in text
    assert "| Held-out style: PG within 0.05 of the trained style | 0.080 | NOT met |" in text
    assert "| Peaks on markers or burned-in text < 1% (films that carry them) | 0.020 | NOT met |" in text
    assert "| full, int8 | 0.800 | 0.820 (+0.020) | 0.720 (-0.080) | 1.00% (1 of 100; 2.00% of 50)" in text
    assert "0.500" not in text, "an older run's scores are not mixed in"


def test_an_older_robustness_run_is_not_shown_with_newer_models(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    _accuracy_run(results, "old.json", "2026-11-01T00:00:00", 0.5, robustness=True)
    _accuracy_run(results, "new.json", "2026-12-01T00:00:00", 0.8)
    text = _report(results, tmp_path / "BENCHMARKS.md")
    assert "## Robustness" not in text
    assert "| Without markers, text and devices: PG within 0.03 | – | not measured |" in text


def test_an_ablation_scored_after_the_full_model_joins_its_run(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    _accuracy_run(results, "a.json", "2026-11-01T00:00:00", 0.3, variant="global_only")
    _accuracy_run(results, "b.json", "2026-12-01T00:00:00", 0.8)
    _accuracy_run(results, "c.json", "2026-12-02T00:00:00", 0.45, variant="global_only")
    text = _report(results, tmp_path / "BENCHMARKS.md")
    assert "| Full beats global-only by >= 0.30 PG | 0.800 vs 0.450 | met |" in text


def test_peak_distances_are_shown_in_mm_when_a_run_measured_them(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    _accuracy_run(results, "a.json", "2026-11-01T00:00:00", 0.5)
    assert "peak to the lesion" not in _report(results, tmp_path / "A.md")  # older runs: no table
    scores = {"pointing_game": 0.6, "peak_distance": 0.05, "cnr": 3.1, "miou": 0.3, "iou": 0.2,
              "dice": 0.3, "auroc": 0.9}
    model = _bench("test_model_accuracy", "int8-full", {
        "kind": "model", "variant": "full", "precision": "int8", "overall": scores,
        "by_finding": {"nodule": dict(scores, peak_distance=0.1)}, "sentences": 10, "images": 5,
        "grid": 40, "best_shift_patches": [0.0, 0.0], "pointing_game_at_best_shift": 0.6,
        "pointing_game_unshifted": 0.6, "film_long_side_mm": 358.4}, 1.0)
    (results / "b.json").write_text(json.dumps({
        "machine_info": {}, "commit_info": {"id": "e" * 10}, "datetime": "2026-12-04T00:00:00",
        "benchmarks": [model]}))
    text = _report(results, tmp_path / "B.md")
    assert "| heatmap | all | nodule |" in text
    assert "| demo, full loss, int8 | 17.9 | 35.8 |" in text  # 0.05 and 0.1 of 358.4 mm


def test_training_record_names_the_cpu_kind_and_every_loss_weight(tmp_path):
    runs = tmp_path / "runs"
    (runs / "full").mkdir(parents=True)
    rows = [{"step": 10, "epoch": 0, "loss": 17.5, "pairs_per_s": 15.0},
            {"step": 20, "epoch": 1, "loss": 16.0, "pairs_per_s": 16.0},
            {"step": 30, "epoch": 1, "loss": 15.0, "pairs_per_s": 14.0}]
    (runs / "full" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {"name": "demo", "model": {"image": {"image_size": 320, "local_stage": 2}},
              "data": {"batch_size": 32}, "optim": {"lr": 1e-3},
              "loss": {"attention_temperature": 0.25, "local_kinds": ["finding"],
                       "global_t2i": 1.0, "global_i2t": 1.0, "local_t2i": 1.0, "local_i2t": 1.0,
                       "local_sentence": 0.5}}
    (runs / "full" / "config.json").write_text(json.dumps(config))
    (runs / "timings.txt").write_text("full: 100 s of training in this run, 190 s process CPU\n"
                                      "full: 50 s of training in this run, 95 s process CPU\n")
    out = tmp_path / "demo-training.json"
    script = Path(__file__).resolve().parents[1] / "scripts" / "demo_training_record.py"
    subprocess.run([sys.executable, str(script), "--runs", str(runs), "--out", str(out)],
                   check=True, capture_output=True)
    record = json.loads(out.read_text())
    assert "logical CPUs, int8 flags" in record["machine"]
    full = record["variants"]["full"]
    assert full["config"]["loss_weights"]["local_sentence"] == 0.5
    assert (full["steps"], full["epochs"], full["last_loss"]) == (30, 2, 15.0)
    assert full["mean_pairs_per_s"] == 15.0  # the first log row (warm-up) left out
    assert (full["seconds"], full["cpu_seconds"]) == (150.0, 285.0)


def test_training_record_keeps_a_variant_trained_elsewhere(tmp_path):
    """An ablation trained later on another machine joins the record; the shipped model's
    entry, and the machine it trained on, stay."""
    runs = tmp_path / "runs"
    (runs / "global_only").mkdir(parents=True)
    rows = [{"step": 10, "epoch": 0, "loss": 7.0, "pairs_per_s": 18.0},
            {"step": 20, "epoch": 0, "loss": 6.0, "pairs_per_s": 20.0}]
    (runs / "global_only" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {"name": "demo+global_only", "model": {"image": {"image_size": 320}},
              "data": {"batch_size": 32}, "optim": {"lr": 1e-3},
              "loss": {"attention_temperature": 0.25, "local_kinds": ["finding"],
                       "global_t2i": 1.0, "global_i2t": 1.0, "local_t2i": 0.0, "local_i2t": 0.0}}
    (runs / "global_only" / "config.json").write_text(json.dumps(config))
    out = tmp_path / "demo-training.json"
    full = {"steps": 1500, "epochs": 12, "seconds": 3000.0, "cpu_seconds": 6000.0,
            "mean_pairs_per_s": 15.0, "last_loss": 6.3}
    out.write_text(json.dumps({"machine": "Other CPU, 2 logical CPUs", "command": "x",
                               "summary": "y", "variants": {"full": full}}))
    script = Path(__file__).resolve().parents[1] / "scripts" / "demo_training_record.py"
    subprocess.run([sys.executable, str(script), "--runs", str(runs), "--out", str(out)],
                   check=True, capture_output=True)
    record = json.loads(out.read_text())
    assert list(record["variants"]) == ["full", "global_only"]
    assert record["variants"]["full"] == full | {"machine": "Other CPU, 2 logical CPUs"}
    assert record["machine"] == "Other CPU, 2 logical CPUs"  # the shipped model's
    assert "logical CPUs, int8 flags" in record["variants"]["global_only"]["machine"]
    assert record["variants"]["global_only"]["steps"] == 20
    results = tmp_path / "results"
    results.mkdir()
    (results / "demo-training.json").write_text(out.read_text())
    text = _report(results, tmp_path / "BENCHMARKS.md")
    assert "| full | ? | 320 px, stride 16 | 1500 | 12 | 50 min | 1.67 h | 15.0 | 6.300 | Other CPU" in text
    # no timings.txt for the ablation: its times are unknown, not NaN
    assert "| global_only | global | 320 px, stride 32 (class activation) | 20 | 1 | – | – |" in text


def test_cached_benchmark_bundles_go_stale_when_a_converter_changes(tmp_path, monkeypatch):
    """The latency benchmarks keep their full-size bundles between runs; a change anywhere in
    the exporter, the published-layout converters in lesionloc_export/sources/ included, must
    remake them, or a run measures the old export."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    import benchmarks.conftest as bench

    converter = tmp_path / "lesionloc_export" / "sources" / "resnet.py"
    converter.parent.mkdir(parents=True)
    (tmp_path / "lesionloc_export" / "bundle_writer.py").write_text("a = 1\n")
    converter.write_text("b = 1\n")
    monkeypatch.setattr(bench, "REPO", tmp_path)
    before = bench.exporter_digest()
    converter.write_text("b = 2\n")
    assert bench.exporter_digest() != before


def test_report_shows_each_openvino_route_with_the_cpu_kind(tmp_path):
    """OpenVINO's provider, its own runtime at a precision on another bundle's graphs, and a
    graph its reader refused: each a row naming the CPU and its int8 flags (or saying they
    were not recorded)."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "run.json").write_text(json.dumps({
        "machine_info": {"cpu": {"brand_raw": "Test CPU", "count": 2}}, "commit_info": {"id": "abc"},
        "datetime": "2026-12-03T00:00:00", "benchmarks": [_bench(
            "test_end_to_end_reference_study", "ort-int8",
            {"engine": "ort-int8", "end_to_end_ms": 10, "outside_encoders_fraction": 0.2,
             "timings_ms": {"read": 1, "preprocess": 1, "image_encoder": 1, "text_encoder": 1,
                            "heatmaps": 1, "total": 4, "write": 1},
             "image": "2048x2048", "sentences": 8, "findings": 5},
            0.01)]}))
    timed = {"cpu_ms": 40.0, "openvino_ms": 20.0, "speedup_median": 2.0,
             "cosine_openvino_vs_cpu": {"a": {"mean": 0.999, "min": 0.995},
                                        "b": {"mean": 0.99, "min": 0.985}}}
    base = {"cpu_model": "Test Xeon", "quantization": "int8", "load_average_1min": 0.5}
    (results / "openvino-old.json").write_text(json.dumps({**base, "encoders": {"image": timed}}))
    (results / "openvino-new.json").write_text(json.dumps({
        **base, "int8_flags": ["avx2", "amx_int8"], "runtime": "openvino", "precision": "bf16",
        "openvino_quantization": "none", "order": "blocks",
        "encoders": {"image": timed, "text": {"graph": "t.onnx", "failed": "No conversion rule"}}}))
    text = _report(results, tmp_path / "BENCHMARKS.md")
    assert ("| openvino-old.json | Test Xeon (int8 flags not recorded) | provider | int8 | alternate "
            "| image | 40 | 20 | 2.00x | 0.9850 | 0.5 |") in text
    assert ("| openvino-new.json | Test Xeon (int8 flags: avx2 amx_int8) | runtime, bf16 | int8 / none "
            "| blocks | image | 40 | 20 | 2.00x | 0.9850 | 0.5 |") in text
    assert "| blocks | text | – | – | – | not read: No conversion rule | 0.5 |" in text


def test_the_speed_up_goal_is_the_median_of_the_days_paired_runs_on_that_cpu(tmp_path):
    """One paired run's median moves with the machine's speed: the goal is the median over
    every kept paired run of the newest one's day and CPU kind, never one lucky run."""
    results = tmp_path / "results"
    amx = {"model": "Xeon", "int8_flags": ["avx512f", "amx_int8"], "logical_cpus": 2}
    epyc = {"model": "EPYC", "int8_flags": ["avx2"], "logical_cpus": 2}

    def paired(median, layout=None):
        bench = _bench("test_speedup_in_paired_rounds", "", {
            "rounds": 3, "speedups": [median] * 3, "speedup_median": median,
            "int8_ms_median": 90, "torch_ms_median": 90 * median,
            "outside_encoders_fraction": 0.4, **({"text_layout": layout} if layout else {})},
            0.09)
        bench["name"] = "test_speedup_in_paired_rounds"
        bench["fullname"] = "benchmarks/x.py::test_speedup_in_paired_rounds"
        return [bench]

    _write_run(results / "a.json", amx, "c1", "2026-12-04T23:00:00", paired(9.0))  # day before
    _write_run(results / "b.json", epyc, "c1", "2026-12-05T09:00:00", paired(9.0))  # other CPU
    _write_run(results / "c.json", amx, "c1", "2026-12-05T10:00:00", paired(3.5))
    _write_run(results / "d.json", amx, "c1", "2026-12-05T11:00:00", paired(3.7))
    _write_run(results / "e.json", amx, "c2", "2026-12-05T12:00:00",
               [*_end_to_end(0.09, 0.3, 0.4), *paired(4.6)])
    text = _report(results, tmp_path / "BENCHMARKS.md")
    assert "Median speed-up 4.60x" in text  # the newest run is still shown
    assert "3.50x (c.json), 3.70x (d.json), 4.60x (e.json)" in text
    assert "| End to end >= 4x faster than PyTorch eager fp32 (paired rounds) | 3.700 | NOT met |" in text
    # the engines' text layout changed the baseline: later runs are taken apart from earlier ones
    _write_run(results / "f.json", amx, "c3", "2026-12-05T13:00:00", paired(3.3, "packed"))
    _write_run(results / "g.json", amx, "c3", "2026-12-05T14:00:00",
               [*_end_to_end(0.09, 0.3, 0.4), *paired(3.4, "packed")])
    text = _report(results, tmp_path / "BENCHMARKS.md")
    assert "with the text encoders packed: 3.30x (f.json), 3.40x (g.json)." in text
    assert "| End to end >= 4x faster than PyTorch eager fp32 (paired rounds) | 3.350 | NOT met |" in text


def test_the_openvino_goal_is_the_median_of_the_days_runs_of_the_newest_configuration(tmp_path):
    """`--providers openvino` has its own goal rows: the paired speed-up over the day's runs
    whose float operators ran as the newest run's did, the batch's fastest OpenVINO engine
    against PyTorch's, and its own cold start and memory."""
    results = tmp_path / "results"
    amx = {"model": "Xeon", "int8_flags": ["avx512f", "amx_int8"], "logical_cpus": 2}

    def paired(ort, ov, precision=None, encoders=None):
        engine = {"ms_median": 80, "image_encoder_ms": 20, "outside_encoders_ms": 36,
                  "outside_encoders_fraction": 0.45}
        bench = _bench("test_openvino_speedup_in_paired_rounds", "", {
            "rounds": 9, "torch_ms_median": 300, "ort-int8": {**engine, "speedup_median": ort},
            "ov-int8": {**engine, "speedup_median": ov},
            **({"openvino_float_precision": precision} if precision else {}),
            **({"openvino_encoders": encoders} if encoders else {})}, 0.3)
        bench["name"] = "test_openvino_speedup_in_paired_rounds"
        bench["fullname"] = "benchmarks/x.py::test_openvino_speedup_in_paired_rounds"
        return [bench]

    def batch(engine, rate):
        return _bench("test_batch_of_realistic_studies", engine, {
            "engine": engine, "films": "reference", "studies": 200, "studies_per_s": rate,
            "cpu_s_per_study": 0.1, "threads": 2, "sentence_cache_hits": 1,
            "sentence_cache_misses": 1, "cpu_kind": amx}, 10)

    def cold(precision, seconds, mb):
        return _bench("test_cold_start_and_peak_memory", precision, {
            "precision": precision, "import_s": 0.2, "load_s": seconds - 0.1,
            "first_result_s": 0.1, "bundle_to_first_result_s": seconds, "process_s": seconds + 0.2,
            "peak_rss_mb": mb}, seconds)

    _write_run(results / "a.json", amx, "c1", "2026-12-05T17:00:00", paired(3.3, 3.9))
    _write_run(results / "b.json", amx, "c2", "2026-12-05T18:00:00", paired(3.4, 4.2, "bf16"))
    _write_run(results / "c.json", amx, "c2", "2026-12-05T18:10:00", paired(3.2, 3.8, "bf16"))
    _write_run(results / "d.json", amx, "c2", "2026-12-05T18:20:00",
               [*_end_to_end(0.09, 0.3, 0.4), *paired(3.5, 4.4, "bf16"),
                batch("ort-int8-2-workers", 13.0), batch("torch-fp32", 3.0),
                batch("ov-int8-2-workers", 15.9), cold("int8", 0.6, 370),
                cold("int8-openvino", 1.6, 500)])
    text = _report(results, tmp_path / "BENCHMARKS.md")
    assert "| a.json | not recorded, not recorded | 300 | 80 / 20 / 36 / 3.30x | 80 / 20 / 36 / " \
           "3.90x |" in text
    assert "Over the 3 runs of 2026-12-05 in the newest configuration (bf16, not recorded): ONNX " \
           "Runtime int8 3.40x, with the image encoder on OpenVINO 4.20x" in text
    assert "| ... with the image encoder on OpenVINO (`--providers openvino`) | 4.200 | met |" in text
    assert "| ... with the image encoder on OpenVINO (`--providers openvino`) | 5.300 | met |" in text
    assert "| Batch throughput on realistic reports >= 5x PyTorch (the fastest way each runs it) " \
           "| 4.333 | NOT met |" in text
    assert "| ... with the image encoder on OpenVINO | 1.600 | NOT met |" in text
    assert "| Peak memory < 600 MB with the image encoder on OpenVINO | 500.000 | met |" in text
    # one batch run moves with the machine's speed: the goal is the median of the day's runs
    for name, when, ov in (("f.json", "18:30", 15.0), ("g.json", "18:40", 14.7)):
        _write_run(results / name, amx, "c2", f"2026-12-05T{when}:00",
                   [batch("ov-int8-2-workers", ov), batch("torch-fp32-2-workers", 3.0),
                    batch("ort-int8", 12.6)])
    text = _report(results, tmp_path / "BENCHMARKS.md")
    assert "PyTorch (the fastest way of each): 5.30x (d.json), 5.00x (f.json), 4.90x (g.json). " \
           "The goals table takes their median, 5.00x." in text
    assert "| ... with the image encoder on OpenVINO (`--providers openvino`) | 5.000 | met |" in text
    assert "| Batch throughput on realistic reports >= 5x PyTorch (the fastest way each runs it) " \
           "| 4.200 | NOT met |" in text
    # a new configuration starts a new set of runs
    _write_run(results / "e.json", amx, "c3", "2026-12-05T19:00:00",
               paired(3.4, 4.6, "bf16", "side by side"))
    text = _report(results, tmp_path / "BENCHMARKS.md")
    assert "Over the 1 runs of 2026-12-05 in the newest configuration (bf16, side by side)" in text
    assert "| ... with the image encoder on OpenVINO (`--providers openvino`) | 4.600 | met |" in text


def test_report_shows_the_time_outside_the_encoders_in_a_study_that_wrote_nothing(tmp_path):
    """The floor under the goal on time outside the encoders: the same study's phases less its
    writing, from the end-to-end benchmark and the paired rounds."""
    timings = {"read": 1, "preprocess": 5, "image_encoder": 40, "text_encoder": 20, "heatmaps": 6,
               "total": 72, "read_dicom": 8, "write": 20, "end_to_end": 100}
    avx512 = {"model": "Test Xeon", "int8_flags": ["avx2", "avx512f", "avx512_vnni"]}
    info = {"engine": "ort-int8", "timings_ms": timings, "end_to_end_ms": 100,
            "outside_encoders_fraction": 0.4, "outside_encoders_ms": 40, "unwritten_fraction": 0.25,
            "unwritten_ms": 20, "image": "2048x2048", "sentences": 8, "findings": 5,
            "cpu_kind": avx512}
    paired = {"rounds": 3, "speedups": [3.0, 3.1, 3.2], "speedup_median": 3.1,
              "int8_ms_median": 100, "torch_ms_median": 310, "outside_encoders_fraction": 0.4,
              "outside_encoders_ms": 40, "unwritten_fraction": 0.25, "unwritten_ms": 20,
              "cpu_kind": avx512}
    results = tmp_path / "results"
    _write_run(results / "20261206-1200-latency.json", avx512, "abc", "2026-12-06T12:00:00", [
        _bench("test_end_to_end_reference_study", "ort-int8", info, 0.1),
        _bench("test_end_to_end_reference_study", "torch-fp32",
               {**info, "engine": "torch-fp32", "end_to_end_ms": 310}, 0.31),
        {**_bench("test_speedup_in_paired_rounds", "", paired, 0.1),
         "name": "test_speedup_in_paired_rounds"}])
    text = _report(results, tmp_path / "BENCHMARKS.md")
    assert "| Time outside the encoders <= 15 ms (AVX-512 CPU) | 40.000 | NOT met |" in text
    assert ("| ... in a study that wrote nothing (reading, preprocessing, heatmaps): <= 20% | "
            "0.250 | NOT met |") in text
    assert "| ... in a study that wrote nothing: <= 15 ms (AVX-512 CPU) | 20.000 | NOT met |" in text
    assert "outside the encoders 40% (40 ms), of which 20 ms not writing (25% of a study that " \
           "wrote nothing)" in text
