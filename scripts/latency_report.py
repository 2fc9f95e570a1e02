"""The parts of BENCHMARKS.md that the latency issue added (scripts/benchmarks_report.py calls
them): which CPU kind each figure comes from, how many cores each phase of the reference study
kept busy, the imported architectures end to end, and batch throughput on realistic reports."""

from __future__ import annotations

import json
import statistics
from typing import Any


def cpu_label(record: dict[str, Any]) -> str:
    """'MODEL (int8 flags: ...)' from what the benchmark recorded; runs made before it recorded
    the flags say so, so that their figures are never read as from another kind of CPU."""
    kind = record.get("machine", {}).get("cpu_kind") or record.get("extra_info", {}).get("cpu_kind")
    if kind:
        return f"{kind['model']} (int8 flags: {' '.join(kind['int8_flags']) or 'none'})"
    cpu = record.get("machine", {}).get("cpu", {})
    return f"{cpu.get('brand_raw', '?')} (int8 flags not recorded)"


def is_avx512(record: dict[str, Any]) -> bool:
    kind = record.get("machine", {}).get("cpu_kind") or record.get("extra_info", {}).get("cpu_kind")
    return bool(kind) and "avx512f" in kind["int8_flags"]


def published_section(runs: dict[str, dict[str, Any]], lines: list[str]) -> None:
    """The imported architectures through the same pipeline as ours, paired rounds."""
    records = sorted((r for r in runs.values()
                      if r["name"].startswith("test_published_model_end_to_end_in_paired_rounds")),
                     key=lambda r: r["extra_info"]["kind"])
    if not records:
        return
    first = records[0]
    lines += ["Imported architectures, full size at random init, converted from their published "
              "layouts by `lesionloc-export --from KIND`, on the reference study through the same "
              f"pipeline (machine: {cpu_label(first)}, run {first['run']}; medians of "
              f"{first['extra_info']['rounds']} paired rounds: PyTorch eager fp32 of the model's "
              "own modules, then ONNX Runtime int8 and fp32, and the int8 bundle with its image "
              "encoder on OpenVINO (ov-int8, `--providers openvino`), study by study; speed-up: "
              "median of each round's ratio to the PyTorch round before it):", "",
              "| model | input | engine | end to end (ms) | image encoder | text encoder | outside "
              "encoders (ms) | outside | speed-up vs PyTorch |",
              "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in records:
        x = r["extra_info"]
        size = f"{x['image_size']} px, grid {x['grid'][0]}x{x['grid'][1]}"
        for engine in ("ort-int8", "ov-int8", "ort-fp32", "torch-fp32"):
            if engine not in x["engines"]:  # ov-int8: since 2026-12-05 evening
                continue
            e = x["engines"][engine]
            t = e["timings_ms"]
            lines.append(f"| {x['kind']} | {size} | {engine} | {e['end_to_end_ms']:.0f} | "
                         f"{t['image_encoder']:.0f} | {t['text_encoder']:.0f} | "
                         f"{e['outside_encoders_ms']:.0f} | {e['outside_encoders_fraction']:.0%} | "
                         f"{e['speedup_median']:.1f}x |")
    overlapped = [f"{r['extra_info']['kind']} {engine} {t['encoders']:.0f} ms together against "
                  f"{t['image_encoder']:.0f} + {t['text_encoder']:.0f}"
                  for r in records for engine, e in r["extra_info"]["engines"].items()
                  for t in [e["timings_ms"]]
                  if t.get("encoders", 1e9) < 0.9 * (t["image_encoder"] + t["text_encoder"])]
    if overlapped:
        lines += ["", "Encoders run side by side (`--providers openvino` on two or more threads: "
                  "each column is that encoder's own time, and the time outside the encoders is "
                  "outside both together): " + "; ".join(overlapped) + "."]
    lines += ["", "Their text encoder column is a stand-in's: made at random init, they carry a "
              "vocabulary made up for the benchmark (common report words, which split the "
              "reference report about as our model's vocabulary does); a real vocabulary may "
              "split it into more pieces (AFLoc's Bio_ClinicalBERT uses BERT's general one), "
              "each a little more text encoder time (docs/latency.md).", ""]


BATCH_LABELS = {
    "ort-int8": "ONNX Runtime int8, sentence cache, pipelined",
    "ort-int8-no-cache": "ONNX Runtime int8, no sentence cache, pipelined",
    "ort-int8-serial": "ONNX Runtime int8, sentence cache, one step at a time",
    "torch-fp32": "PyTorch eager fp32, sentence cache, pipelined",
    "torch-fp32-no-cache": "PyTorch eager fp32, no sentence cache, pipelined",
    "ort-int8-compressed-films": "ONNX Runtime int8, sentence cache, pipelined; all 12 films, "
                                 "4 of them compressed",
    "torch-fp32-compressed-films": "PyTorch eager fp32, sentence cache, pipelined; all 12 films, "
                                   "4 of them compressed",
    "ort-int8-2-workers": "ONNX Runtime int8, sentence cache, 2 workers of 1 thread "
                          "(`--workers 2`), their start included",
    "torch-fp32-2-workers": "PyTorch eager fp32, sentence cache, 2 workers of 1 thread, "
                            "their start included",
    "ov-int8": "int8, image encoder on OpenVINO (`--providers openvino`), sentence cache, "
               "pipelined",
    "ov-int8-2-workers": "int8, image encoder on OpenVINO, sentence cache, 2 workers of 1 "
                         "thread, their start included",
}


def batch_section(runs: dict[str, dict[str, Any]], lines: list[str],
                  results: Any = None) -> dict[str, float]:
    """Studies per second on realistic reports, each engine against PyTorch with and without
    the cache. The goal compares like with like on the reference films, both with the cache:
    the fastest way each int8 engine runs the batch (one process or two workers) against the
    fastest way PyTorch does, and only when every row comes from one kind of CPU; with the
    `results` folder, over the day's runs (`batch_goals_of_the_day`)."""
    by = {r["extra_info"]["engine"]: r for r in runs.values()
          if r["name"].startswith("test_batch_of_realistic_studies")}
    if not by:
        return {}
    first = next(iter(by.values()))
    x0 = first["extra_info"]
    films = ("studies of the reference kind (uncompressed 12-bit 2048 px DICOM phantoms; the "
             "rows marked so use all twelve films of the phantom set, three JPEG 2000 and one "
             "JPEG-LS among them, and are compared with PyTorch on the same films)"
             if "films" in x0 else  # runs before the films were recorded cycled all twelve
             "studies cycling the twelve 2048 px DICOM films of the reference phantom set (eight "
             "uncompressed, three JPEG 2000, one JPEG-LS)")
    kinds = {cpu_label(r) for r in by.values()}
    runs_used = ", ".join(sorted({r["run"] for r in by.values()}))
    lines += [f"Batch throughput: {x0['studies']} {films} with generated reports in which normal "
              "statements and negations repeat word for word (benchmarks/report_samples.py), "
              f"one process on {x0['threads']} threads with its sessions loaded beforehand unless "
              f"the row says two workers (machine: {' / '.join(sorted(kinds))}; runs {runs_used}; "
              "`-k realistic` of the latency command). Every engine runs the same pipeline; the "
              "PyTorch one has its encoders in PyTorch. Each row is the engine's newest run; a "
              "ratio is given only between rows measured on the same day, as the machine's "
              "speed moves from day to day:", "",
              "| engine | day | studies/s | CPU s per study | sentence cache hits / misses | vs "
              "PyTorch with cache | vs PyTorch without |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    rate = {e: r["extra_info"]["studies_per_s"] for e, r in by.items()}
    day = {e: str(r.get("datetime", ""))[:10] for e, r in by.items()}

    def versus(engine: str, base: str) -> str:
        if base not in rate or day[base] != day[engine]:
            return "–"
        return f"{rate[engine] / rate[base]:.1f}x"

    for engine in BATCH_LABELS:
        if engine not in by:
            continue
        x = by[engine]["extra_info"]
        mixed = engine.endswith("compressed-films")
        workers = engine.endswith("2-workers")  # compared with PyTorch in as many workers
        with_cache = versus(engine, "torch-fp32-compressed-films" if mixed else
                            "torch-fp32-2-workers" if workers else "torch-fp32")
        without = "–" if mixed or workers else versus(engine, "torch-fp32-no-cache")
        cpu = "–" if x["cpu_s_per_study"] is None else f"{x['cpu_s_per_study']:.3f}"
        hits = ("–" if x["sentence_cache_hits"] is None else
                f"{x['sentence_cache_hits']} / {x['sentence_cache_misses']}")
        lines.append(f"| {BATCH_LABELS[engine]} | {day[engine] or '–'} | {x['studies_per_s']:.2f} "
                     f"| {cpu} | {hits} | {with_cache} | {without} |")
    lines.append("")
    if len(kinds) > 1:
        lines += ["These rows come from more than one kind of CPU: no ratio between them is a "
                  "figure of this project.", ""]
        return {}
    if results is not None:
        return batch_goals_of_the_day(results, runs, lines)
    return {goal: ratio for goal, ratio in ((goal, _batch_ratio(rate, engines))
                                            for goal, engines in _BATCH_SIDES.items()) if ratio}


_BATCH_SIDES = {"batch_speedup": ("ort-int8", "ort-int8-serial", "ort-int8-2-workers"),
                "batch_speedup_openvino": ("ov-int8", "ov-int8-2-workers")}
_BATCH_TORCH = ("torch-fp32", "torch-fp32-2-workers")


def _batch_ratio(rate: dict[str, float], engines: tuple[str, ...]) -> float | None:
    """One run's fastest way of `engines` against its fastest way of PyTorch, if both ran."""
    ours = [rate[e] for e in engines if e in rate]
    theirs = [rate[e] for e in _BATCH_TORCH if e in rate]
    return max(ours) / max(theirs) if ours and theirs else None


def batch_goals_of_the_day(results: Any, runs: dict[str, dict[str, Any]],
                           lines: list[str]) -> dict[str, float]:
    """The batch goals as the median over the day's runs (of the newest batch record's day and
    CPU kind) that measured both an engine and PyTorch: one batch run moves by several percent
    with the machine's speed, as a paired run does. Each run's ratio: its fastest way of the
    engine against its fastest way of PyTorch, on the reference films."""
    newest = max((r for r in runs.values()
                  if r["name"].startswith("test_batch_of_realistic_studies")),
                 key=lambda r: r["datetime"], default=None)
    if newest is None or results is None:
        return {}
    day, kind = newest["datetime"][:10], cpu_label(newest)
    ratios: dict[str, list[tuple[str, float]]] = {goal: [] for goal in _BATCH_SIDES}
    for path in sorted(results.glob("*.json")):
        data = json.loads(path.read_text())
        if str(data.get("datetime", ""))[:10] != day:
            continue
        rate = {b["extra_info"]["engine"]: b["extra_info"]["studies_per_s"]
                for b in data.get("benchmarks", [])
                if b["name"].startswith("test_batch_of_realistic_studies")
                and cpu_label({"machine": data.get("machine_info", {}),
                               "extra_info": b["extra_info"]}) == kind}
        for goal, engines in _BATCH_SIDES.items():
            if (ratio := _batch_ratio(rate, engines)) is not None:
                ratios[goal].append((path.name, ratio))
    goals = {goal: statistics.median(r for _, r in found) for goal, found in ratios.items() if found}
    for goal, label in (("batch_speedup", "ONNX Runtime int8"),
                        ("batch_speedup_openvino", "int8 with the image encoder on OpenVINO")):
        if len(ratios[goal]) > 1:
            lines += [f"Every batch run of {day} on this CPU that measured {label} and PyTorch "
                      "(the fastest way of each): "
                      + ", ".join(f"{r:.2f}x ({name})" for name, r in ratios[goal])
                      + f". The goals table takes their median, {goals[goal]:.2f}x.", ""]
    return goals


def decoder_section(runs: dict[str, dict[str, Any]], lines: list[str]) -> None:
    """A study on a compressed film with the decoder the reader picks and with pydicom's own."""
    found = sorted((r for r in runs.values()
                    if r["name"].startswith("test_compressed_film_study_by_decoder")),
                   key=lambda r: r["extra_info"]["syntax"])
    if not found:
        return
    lines += ["A study on a compressed film of the phantom set (HTJ2K: the reference film "
              "re-encoded; read, localized with int8, written) with the decoder the reader "
              "picks (`imageio/decoders.py`: JPEG 2000 and HTJ2K on the engine's threads, "
              "JPEG-LS through CharLS) and with pydicom's own order, "
              "alternated rounds, medians (`-k by_decoder` of the latency command; machine: "
              f"{' / '.join(sorted({cpu_label(r) for r in found}))}; runs "
              f"{', '.join(sorted({r['run'] for r in found}))}):", "",
              "| film | study, chosen decoder (ms) | study, pydicom's order (ms) | reading, chosen "
              "| reading, pydicom's | speed-up of the study |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in found:
        x = r["extra_info"]
        chosen, theirs = x["chosen_end_to_end_ms_median"], x["pydicom_end_to_end_ms_median"]
        lines.append(f"| {x['syntax']} ({x['film']}, {x['threads']} threads) | {chosen:.1f} | "
                     f"{theirs:.1f} | {x['chosen_read_dicom_ms_median']:.1f} | "
                     f"{x['pydicom_read_dicom_ms_median']:.1f} | {theirs / chosen:.2f}x |")
    lines.append("")


def latency_goals(goals: dict[str, Any]) -> list[tuple[str, Any, bool | None]]:
    """The latency issue's rows of the goals table."""

    def check(key: str, test: Any) -> tuple[Any, bool | None]:
        value = goals.get(key)
        return value, None if value is None else bool(test(value))

    return [
        ("End to end >= 4x faster than PyTorch eager fp32 (paired rounds)",
         *check("speedup", lambda v: v >= 4)),
        ("... with the image encoder on OpenVINO (`--providers openvino`)",
         *check("speedup_openvino", lambda v: v >= 4)),
        ("Time outside the encoders <= 20% of the study", *check("outside", lambda v: v <= 0.20)),
        ("Time outside the encoders <= 15 ms (AVX-512 CPU)",
         *check("outside_ms_avx512", lambda v: v <= 15)),
        ("... in a study that wrote nothing (reading, preprocessing, heatmaps): <= 20%",
         *check("outside_unwritten", lambda v: v <= 0.20)),
        ("... in a study that wrote nothing: <= 15 ms (AVX-512 CPU)",
         *check("outside_unwritten_ms_avx512", lambda v: v <= 15)),
        ("Batch throughput on realistic reports >= 5x PyTorch (the fastest way each runs it)",
         *check("batch_speedup", lambda v: v >= 5)),
        ("... with the image encoder on OpenVINO (`--providers openvino`)",
         *check("batch_speedup_openvino", lambda v: v >= 5)),
        ("Cold start (bundle load to first result) < 1.5 s", *check("cold_start", lambda v: v < 1.5)),
        ("... with the image encoder on OpenVINO", *check("cold_start_openvino", lambda v: v < 1.5)),
        ("Peak memory < 600 MB", *check("peak_mb", lambda v: v < 600)),
        ("Peak memory < 600 MB with the image encoder on OpenVINO",
         *check("peak_mb_openvino", lambda v: v < 600)),
    ]


def openvino_section(results: Any, lines: list[str]) -> None:
    """benchmarks/openvino_check.py's records: OpenVINO (its execution provider for ONNX
    Runtime, or its own runtime) against ONNX Runtime's CPU provider."""

    records = [(p.name, json.loads(p.read_text())) for p in sorted(results.glob("openvino-*.json"))]
    if not records:
        return
    lines += ["OpenVINO against ONNX Runtime's CPU provider, each encoder alone, medians "
              "(`benchmarks/openvino_check.py BUNDLE`; its docstring gives the venvs). "
              "\"provider\": OpenVINO's execution provider (`onnxruntime-openvino`) on the "
              "bundle's graphs; \"runtime\": OpenVINO's own runtime on the graphs of the bundle "
              "named after the slash, at the precision given, against the CPU provider on "
              "the first bundle's. Order: the engines by turns, as a study's two encoders "
              "run, or each engine's rounds together. Adopted only at >= 1.5x on the "
              "encoders with the int8 parity kept (cosine >= 0.99 mean, 0.98 worst):", "",
              "| run | CPU | OpenVINO | bundle | order | encoder | CPU provider (ms) | "
              "OpenVINO (ms) | speed-up | cosine OpenVINO vs CPU, worst | load (1 min) |",
              "| --- | --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in records:
        flags = r.get("int8_flags")
        cpu = f"{r['cpu_model']} (int8 flags: {' '.join(flags) or 'none'})" if flags is not None \
            else f"{r['cpu_model']} (int8 flags not recorded)"
        if r.get("runtime") == "openvino":
            how = f"runtime, {r['precision']}"
            bundle = f"{r['quantization']} / {r['openvino_quantization']}"
        else:
            how, bundle = "provider", str(r["quantization"])
        for kind, e in r["encoders"].items():
            if "failed" in e:
                lines.append(f"| {name} | {cpu} | {how} | {bundle} | {r.get('order', 'alternate')} "
                             f"| {kind} | – | – | – | not read: {e['failed'].lstrip('- ')} | "
                             f"{r['load_average_1min']:.1f} |")
                continue
            worst = min(v["min"] for v in e["cosine_openvino_vs_cpu"].values())
            lines.append(f"| {name} | {cpu} | {how} | {bundle} | {r.get('order', 'alternate')} | "
                         f"{kind} | {e['cpu_ms']:.0f} | {e['openvino_ms']:.0f} | "
                         f"{e['speedup_median']:.2f}x | {worst:.4f} | "
                         f"{r['load_average_1min']:.1f} |")
    lines.append("")


_PHASES = (("read_dicom", "reading"), ("preprocess", "preprocessing"),
           ("image_encoder", "image encoder"), ("text_encoder", "text encoder"),
           ("heatmaps", "heatmaps"), ("write", "writing"))


def cores_busy(e2e: dict[str, dict[str, Any]]) -> list[str]:
    """How many of the cores each phase of the reference study kept busy (CPU time of all the
    process's threads over wall time, medians), for the runs that recorded it."""
    rows = []
    for engine in ("ort-int8", "ov-int8", "ort-fp32", "torch-fp32"):
        t = e2e.get(engine, {}).get("extra_info", {}).get("timings_ms", {})
        if "cpu_read_dicom" not in t:
            continue
        phases = ", ".join(f"{label} {t['cpu_' + key] / t[key]:.2f}" for key, label in _PHASES
                           if t.get(key))
        rows.append(f"{engine}: {phases}; the study {t['cpu'] / t['end_to_end']:.2f}")
    if not rows:
        return []
    return ["", "Cores kept busy by each phase (CPU time of every thread of the process over "
            "the phase's wall time, medians; a phase below the core count leaves cores idle, "
            "above 1 on one thread's work means threads spinning): " + "; ".join(rows) + "."]


def runs_of_the_day(results: Any, latest: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(run, extra_info) of every kept record of `latest`'s benchmark on its CPU kind and day,
    oldest first: the runs a goal that drifts with the machine's speed is taken over."""
    kind, day = cpu_label(latest), str(latest.get("datetime", ""))[:10]
    found = []
    for path in sorted(results.glob("*.json")):
        data = json.loads(path.read_text())
        if str(data.get("datetime", ""))[:10] != day:
            continue
        for bench in data.get("benchmarks", []):
            record = {"machine": data.get("machine_info", {}), "extra_info": bench["extra_info"]}
            if bench["name"] == latest["name"] and cpu_label(record) == kind:
                found.append((path.name, bench["extra_info"]))
    return found


def openvino_runtime_section(runs: dict[str, dict[str, Any]], results: Any,
                             lines: list[str]) -> dict[str, Any]:
    """`--providers openvino`: the image encoder alone on each runtime with its parity against
    PyTorch, and the reference study in paired rounds against PyTorch beside ONNX Runtime int8
    (the goal takes the median of the day's runs on the newest run's CPU kind)."""
    goals: dict[str, Any] = {}
    encoder = sorted((r for r in runs.values()
                      if r["name"].startswith("test_int8_image_encoder_by_provider")),
                     key=lambda r: r["extra_info"]["threads"])
    if encoder:
        lines += ["The int8 image encoder on ONNX Runtime's CPU provider and on OpenVINO's "
                  "runtime (`--providers openvino`, lesionloc_runtime/openvino_engine.py), "
                  "alternated rounds of the reference film, medians; cosine of each against the "
                  "PyTorch model on four films, as the export's parity check (int8: mean >= "
                  "0.99, worst >= 0.98; `-k by_provider`, machine "
                  f"{cpu_label(encoder[0])}, run {encoder[0]['run']}):", "",
                  "| threads | CPU provider (ms) | OpenVINO (ms) | speed-up | patch cosine, CPU "
                  "provider (mean / worst) | patch cosine, OpenVINO (mean / worst) |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in encoder:
            x = r["extra_info"]
            cells = [f"{x['parity_against_pytorch'][k]['patch_embeds']['mean']:.4f} / "
                     f"{x['parity_against_pytorch'][k]['patch_embeds']['min']:.4f}"
                     for k in ("cpu", "openvino")]
            lines.append(f"| {x['threads']} | {x['cpu_ms']:.1f} | {x['openvino_ms']:.1f} | "
                         f"{x['speedup']:.2f}x | {cells[0]} | {cells[1]} |")
        lines.append("")
    paired = next((r for r in runs.values()
                   if r["name"] == "test_openvino_speedup_in_paired_rounds"), None)
    if paired is None or results is None:
        return goals
    day, kind = paired["datetime"][:10], cpu_label(paired)
    same_day = runs_of_the_day(results, paired)

    def configuration(x: dict[str, Any]) -> str:
        """What OpenVINO's engine ran as, as the run recorded it."""
        return (f"{x.get('openvino_float_precision', 'not recorded')}, "
                f"{x.get('openvino_encoders', 'not recorded')}")

    lines += [f"The reference study with the image encoder on OpenVINO, paired rounds (`-k "
              f"openvino_speedup`; machine {kind}): each round PyTorch eager fp32, then ONNX "
              "Runtime int8 and the int8 bundle with `--providers openvino` in alternating "
              "order, each against that round's PyTorch study; medians of 9 rounds. "
              "\"configuration\": what OpenVINO ran the int8 graph's float operators in, and "
              "whether its image encoder ran beside the text encoder (\"not recorded\": a run "
              "made before the benchmark recorded it):", "",
              "| run | configuration | PyTorch (ms) | ONNX Runtime int8: study (ms) / image "
              "encoder / outside encoders / speed-up | image encoder on OpenVINO: study (ms) / "
              "image encoder / outside encoders / speed-up |", "| --- | --- | ---: | ---: | ---: |"]
    for run, x in same_day:
        cells = [f"{e['ms_median']:.0f} / {e['image_encoder_ms']:.0f} / "
                 f"{e['outside_encoders_ms']:.0f} / {e['speedup_median']:.2f}x"
                 for e in (x["ort-int8"], x["ov-int8"])]
        lines.append(f"| {run} | {configuration(x)} | {x['torch_ms_median']:.0f} | {cells[0]} "
                     f"| {cells[1]} |")
    # the goal: the runs of the newest run's configuration
    newest = configuration(paired["extra_info"])
    kept = [x for _, x in same_day if configuration(x) == newest]
    ort = statistics.median(x["ort-int8"]["speedup_median"] for x in kept)
    goals["speedup_openvino"] = statistics.median(x["ov-int8"]["speedup_median"] for x in kept)
    lines += ["", f"Over the {len(kept)} runs of {day} in the newest configuration ({newest}): "
              f"ONNX Runtime int8 {ort:.2f}x, with the image encoder on OpenVINO "
              f"{goals['speedup_openvino']:.2f}x (the goals table's figure). PyTorch's own speed "
              "moves both ratios from run to run; within a run the two int8 engines see the same "
              "rounds.", ""]
    return goals
