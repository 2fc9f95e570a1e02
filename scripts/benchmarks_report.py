"""Generate BENCHMARKS.md (and its plots) from the benchmark JSON files: never typed by hand.

    python scripts/benchmarks_report.py [--results benchmarks/results] [--out BENCHMARKS.md]

Reads every pytest-benchmark JSON in the results directory (each run is kept, so later runs can
be compared with earlier ones; the newest run that has a given benchmark wins), plus
`export-full-model.json` (benchmarks/full_model.py) and `demo-training.json`
(scripts/demo_training_record.py) when present.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path
from typing import Any

from latency_report import (
    batch_section,
    cores_busy,
    cpu_label,
    decoder_section,
    is_avx512,
    latency_goals,
    openvino_runtime_section,
    openvino_section,
    published_section,
    runs_of_the_day,
)

REPO = Path(__file__).resolve().parents[1]
FINDING_ORDER = ["consolidation", "nodule", "mass", "effusion", "pneumothorax", "atelectasis",
                 "cardiomegaly"]


def load_runs(results: Path) -> dict[str, dict[str, Any]]:
    """name -> {benchmark record + run metadata}, newest run first wins."""
    latest: dict[str, dict[str, Any]] = {}
    for path in sorted(results.glob("*.json")):
        data = json.loads(path.read_text())
        if "benchmarks" not in data:
            continue
        for bench in data["benchmarks"]:
            record = dict(bench, run=path.name, datetime=data.get("datetime", ""),
                          machine=data.get("machine_info", {}), commit=data.get("commit_info", {}))
            key = bench["fullname"]
            if key not in latest or record["datetime"] >= latest[key]["datetime"]:
                latest[key] = record
    return latest


def machine_line(record: dict[str, Any]) -> str:
    m = record["machine"]
    cpu = m.get("cpu", {})
    brand = cpu_label(record) if m.get("cpu_kind") else cpu.get('brand_raw', m.get('processor', '?'))
    return (f"{brand}, {cpu.get('count', '?')} logical "
            f"CPUs, {m.get('system', '')} {m.get('release', '')}, Python {m.get('python_version', '')}"
            f" (run {record['run']}, commit {record['commit'].get('id', '?')[:10]})")


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.0f}"


def f3(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}"


def paired_runs_of_the_day(results: Path, latest: dict[str, Any]) -> list[tuple[str, float]]:
    """(run, median speed-up) of every kept paired-rounds run on the CPU kind and the day of
    `latest` (the newest) whose text encoders ran in its layout, oldest first: both engines
    pack a report's sentences since packed text graphs (`text_layout` "packed"; runs before
    it padded them), which moved PyTorch's time more than int8's."""
    layout = latest["extra_info"].get("text_layout", "padded")
    return [(run, float(x["speedup_median"])) for run, x in runs_of_the_day(results, latest)
            if x.get("text_layout", "padded") == layout]


def e2e_history(results: Path) -> list[str]:
    """One row per kept run with the end-to-end benchmark: how much the same figures move
    between runs on a shared machine (and with the code), so one run's goal is read in context."""
    rows = []
    for path in sorted(results.glob("*.json")):
        data = json.loads(path.read_text())
        by = {b["extra_info"].get("engine"): b for b in data.get("benchmarks", [])
              if b["name"].startswith("test_end_to_end_reference_study")}
        if "ort-int8" not in by or "torch-fp32" not in by:
            continue
        cold = next((b["extra_info"]["bundle_to_first_result_s"] for b in data["benchmarks"]
                     if b["name"] == "test_cold_start_and_peak_memory[int8]"), None)
        paired = next((b["extra_info"]["speedup_median"] for b in data["benchmarks"]
                       if b["name"] == "test_speedup_in_paired_rounds"), None)
        int8, torch = by["ort-int8"]["stats"]["median"], by["torch-fp32"]["stats"]["median"]
        commit = str(data.get("commit_info", {}).get("id", ""))[:7]
        cpu = cpu_label({"machine": data.get("machine_info", {})})
        rows.append(f"| {path.name} | {cpu} | {commit} | {ms(int8)} | "
                    f"{ms(torch)} | {torch / int8:.1f}x | "
                    f"{by['ort-int8']['extra_info']['outside_encoders_fraction']:.0%} | "
                    f"{'–' if paired is None else f'{paired:.1f}x'} | "
                    f"{'–' if cold is None else f'{cold:.2f}'} |")
    if len(rows) < 2:
        return []
    return ["Every kept run of the end-to-end benchmark (the table above is the last one; commit: "
            "the one checked out, which some runs measured with changes not yet committed). "
            "Figures from different CPUs are not comparable: the CPU column says which, with "
            "the int8 instruction sets where the run recorded them:", "",
            "| run | CPU | commit | ort-int8 (ms) | torch-fp32 (ms) | speed-up | outside encoders "
            "| speed-up, paired rounds | cold start (s) |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |", *rows, ""]


def write_layouts(runs: dict[str, dict[str, Any]]) -> list[str]:
    """The paired write-time benchmark: the burned-in layout against the study page."""
    record = next((r for r in runs.values()
                   if r["name"] == "test_write_time_of_the_reference_study_by_layout"), None)
    if record is None:
        return []
    x = record["extra_info"]
    return [f"Writing the reference study's outputs ({x['image']}, {x['sentences']} sentences, "
            f"{x['grounded']} grounded), the two layouts in turn, {x['rounds']} rounds, medians "
            f"(`-k write_time` of the command above; machine: {machine_line(record)}):", "",
            "| layout | wall (ms) | CPU, all threads (ms) |", "| --- | ---: | ---: |",
            f"| overlays + summary (schema 1's default, now `--overlays`) | "
            f"{x['overlays_ms_median']:.0f} | {x['overlays_cpu_ms_median']:.0f} |",
            f"| study page (the default) | {x['page_ms_median']:.0f} | "
            f"{x['page_cpu_ms_median']:.0f} |", "",
            f"Median ratio of the paired rounds: {x['overlays_over_page_median']:.2f}x."
            + (f" Load average over the last minute of the run: {x['load_average_1min']:.1f} "
               "(wall time includes waiting for the cores)." if "load_average_1min" in x else ""),
            ""]


def text_layouts(runs: dict[str, dict[str, Any]]) -> list[str]:
    """The text encoder's two layouts (`test_text_encoder_layouts`): packed against padded."""
    records = [r for r in runs.values() if r["name"].startswith("test_text_encoder_layouts")]
    if not records:
        return []
    first = records[0]["extra_info"]
    lines = [f"Text encoder, the reference report's {first['sentences']} sentences "
             f"({first['tokens']} tokens) packed in one sequence (the export's default) and "
             "padded one row each in runs by length, in alternated rounds, medians "
             f"(`-k text_encoder_layouts`; run {records[0]['run']}, machine "
             f"{cpu_label(records[0])}):", "",
             "| engine | packed (ms) | padded (ms) | runs packed / padded | cosine, worst |",
             "| --- | ---: | ---: | ---: | ---: |"]
    order = {"int8": 0, "fp32": 1, "pytorch": 2}
    for r in sorted(records, key=lambda r: order.get(r["extra_info"]["engine"], 3)):
        x = r["extra_info"]
        lines.append(f"| {x['engine']} | {x['packed_ms']:.1f} | {x['padded_ms']:.1f} | "
                     f"{x['packed_runs']} / {x['padded_runs']} | {x['sentence_cosine_min']:.5f} |")
    return [*lines, ""]


def section_latency(runs: dict[str, dict[str, Any]], lines: list[str], plots: Path,
                    results: Path | None = None) -> dict:
    e2e = {r["extra_info"]["engine"]: r for r in runs.values()
           if r["name"].startswith("test_end_to_end_reference_study")}
    goals: dict[str, Any] = {}
    if not e2e:  # the imported models and the batch can be measured alone (-k)
        more: list[str] = []
        published_section(runs, more)
        goals.update(batch_section(runs, more, results))
        decoder_section(runs, more)
        lines += ["## Latency", "", *more] if more else []
        return goals
    any_record = next(iter(e2e.values()))
    lines += ["## Latency", "", f"Machine: {machine_line(any_record)}.", "",
              "Command: `pytest benchmarks/bench_latency.py --benchmark-only --full "
              "--benchmark-json benchmarks/results/RUN.json`", "",
              f"Reference study: {any_record['extra_info']['image']} 12-bit DICOM phantom, report of "
              f"{any_record['extra_info']['sentences']} sentences ({any_record['extra_info']['findings']} "
              "findings), read, localized and written ("
              f"{any_record['extra_info'].get('outputs', 'overlays, summary, study JSON')}). "
              "Full-size model: "
              "ResNet-50 at 448 px + BERT-base-size text encoder (Bio_ClinicalBERT's config), random "
              "weights. Medians of 5 rounds after a warm-up.", "",
              "| engine | end to end (ms) | image encoder | text encoder | read | preprocess | heatmaps "
              "| write | outside encoders | speed-up vs PyTorch |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    torch_time = e2e.get("torch-fp32", {}).get("stats", {}).get("median")
    for engine in ("ort-int8", "ov-int8", "ort-fp32", "torch-fp32"):
        if engine not in e2e:
            continue
        r = e2e[engine]
        t = r["extra_info"]["timings_ms"]
        median = r["stats"]["median"]
        speed = f"{torch_time / median:.1f}x" if torch_time else "–"
        read = t.get("read_dicom", 0.0) + t["read"]  # the DICOM (timed since 2026-11-28) + report
        lines.append(f"| {engine} | {ms(median)} | {t['image_encoder']:.0f} | {t['text_encoder']:.0f} | "
                     f"{read:.0f} | {t['preprocess']:.0f} | {t['heatmaps']:.0f} | {t['write']:.0f} | "
                     f"{r['extra_info']['outside_encoders_fraction']:.0%} | {speed} |")
    overlapped = [f"{engine} {t['encoders']:.0f} ms together against {t['image_encoder']:.0f} + "
                  f"{t['text_encoder']:.0f}" for engine, r in e2e.items()
                  for t in [r["extra_info"]["timings_ms"]]
                  if t.get("encoders", 1e9) < 0.9 * (t["image_encoder"] + t["text_encoder"])]
    if overlapped:
        lines += ["", "Encoders run side by side (`--providers openvino` on two or more threads: "
                  "each column is that encoder's own time, and the time outside the encoders "
                  "is outside both together): " + "; ".join(overlapped) + "."]
    lines += cores_busy(e2e)
    if torch_time and "ort-int8" in e2e:
        goals["speedup"] = torch_time / e2e["ort-int8"]["stats"]["median"]
        goals["outside"] = e2e["ort-int8"]["extra_info"]["outside_encoders_fraction"]
        int8 = e2e["ort-int8"]["extra_info"]
        if "outside_encoders_ms" in int8 and is_avx512(e2e["ort-int8"]):
            goals["outside_ms_avx512"] = int8["outside_encoders_ms"]
        if "unwritten_fraction" in int8:  # runs since 2026-12-06 record it
            goals["outside_unwritten"] = int8["unwritten_fraction"]
            if is_avx512(e2e["ort-int8"]):
                goals["outside_unwritten_ms_avx512"] = int8["unwritten_ms"]
    lines.append("")
    paired = next((r for r in runs.values() if r["name"] == "test_speedup_in_paired_rounds"), None)
    if paired is not None:
        x = paired["extra_info"]
        lines += [f"Paired rounds (run {paired['run']}): ort-int8 and torch-fp32 study by study in "
                  f"turn, {x['rounds']} rounds, each int8 round against the PyTorch round just "
                  "before it, so both see the same phase of this shared machine's speed. Median "
                  f"speed-up {x['speedup_median']:.2f}x (rounds: "
                  f"{', '.join(f'{v:.2f}' for v in x['speedups'])}); medians ort-int8 "
                  f"{x['int8_ms_median']:.0f} ms, torch-fp32 {x['torch_ms_median']:.0f} ms, "
                  f"outside the encoders {x['outside_encoders_fraction']:.0%}"
                  + (f" ({x['outside_encoders_ms']:.0f} ms)" if "outside_encoders_ms" in x else "")
                  + (f", of which {x['unwritten_ms']:.0f} ms not writing ({x['unwritten_fraction']:.0%} "
                     "of a study that wrote nothing)" if "unwritten_ms" in x else "")
                  + (f"; load average over the last minute {x['load_average_1min']:.1f}"
                     if "load_average_1min" in x else "")
                  + ".", ""]
        goals["speedup"] = x["speedup_median"]
        same_day = paired_runs_of_the_day(results, paired) if results is not None else []
        if len(same_day) > 1:
            goals["speedup"] = float(statistics.median(ratio for _, ratio in same_day))
            lines += [f"Every kept run of the paired rounds on this CPU that day "
                      f"({paired['datetime'][:10]}, each at its own commit) with the text "
                      f"encoders {x.get('text_layout', 'padded')}: "
                      + ", ".join(f"{ratio:.2f}x ({run})" for run, ratio in same_day)
                      + f". One run's median moves by 10-20% with the machine's speed, so the goals "
                      f"table takes the median of these, {goals['speedup']:.2f}x.", ""]
        else:
            lines[-2] += " The goals table takes the speed-up from here."
    if results is not None:
        lines += e2e_history(results)
    published_section(runs, lines)
    goals.update(batch_section(runs, lines, results))
    decoder_section(runs, lines)
    goals.update(openvino_runtime_section(runs, results, lines))
    if results is not None:
        openvino_section(results, lines)
    lines += write_layouts(runs)

    images = [r for r in runs.values() if r["name"].startswith("test_image_encoder_by_input_size")]
    if images:
        lines += ["Image encoder alone, by input size (ms, median):", "",
                  "| input | int8 | fp32 |", "| --- | ---: | ---: |"]
        by = {(r["extra_info"]["size"], r["extra_info"]["precision"]): r["stats"]["median"] for r in images}
        for size in sorted({k[0] for k in by}):
            lines.append(f"| {size} px | {ms(by.get((size, 'int8'), float('nan')))} | "
                         f"{ms(by.get((size, 'fp32'), float('nan')))} |")
        lines.append("")
    texts = [r for r in runs.values() if r["name"].startswith("test_text_encoder_by_sentence_count")]
    if texts:
        lines += ["Text encoder alone, distinct sentences (ms, median; runs: the encoder's "
                  "runs, since packed text graphs one row up to 160 tokens and runs by length "
                  "beyond; batches grouped by length before, one padded batch before that; run "
                  f"{', '.join(sorted({r['run'] for r in texts}))}, machine "
                  f"{cpu_label(texts[0])}):", "",
                  "| sentences | tokens | runs | int8 | fp32 |",
                  "| ---: | ---: | ---: | ---: | ---: |"]
        by = {(r["extra_info"]["sentences"], r["extra_info"]["precision"]): r for r in texts}
        for count in sorted({k[0] for k in by}):
            info = next(r["extra_info"] for k, r in by.items() if k[0] == count)
            cells = [ms(by[(count, p)]["stats"]["median"]) if (count, p) in by else "–"
                     for p in ("int8", "fp32")]
            lines.append(f"| {count} | {info['tokens']} | {info.get('runs', 1)} | {cells[0]} | "
                         f"{cells[1]} |")
        lines.append("")
    lines += text_layouts(runs)
    cold = [r for r in runs.values() if r["name"].startswith("test_cold_start_and_peak_memory")]
    if cold:
        lines += ["Cold start in a fresh process (median of 3) and peak memory:", "",
                  "| bundle | import (s) | bundle load (s) | first result (s) "
                  "| bundle load to first result (s) | peak RSS (MB) |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for r in sorted(cold, key=lambda r: r["extra_info"]["precision"]):
            x = r["extra_info"]
            lines.append(f"| {x['precision'].replace('none', 'fp32')} | {x['import_s']:.2f} | "
                         f"{x['load_s']:.2f} | {x['first_result_s']:.2f} | "
                         f"{x['bundle_to_first_result_s']:.2f} | {x['peak_rss_mb']:.0f} |")
            if x["precision"] == "int8":
                goals["cold_start"] = x["bundle_to_first_result_s"]
                goals["peak_mb"] = x["peak_rss_mb"]
            if x["precision"] == "int8-openvino":
                goals["cold_start_openvino"] = x["bundle_to_first_result_s"]
                goals["peak_mb_openvino"] = x["peak_rss_mb"]
        lines.append("")
    batch = [r for r in runs.values() if r["name"].startswith("test_batch_throughput")]
    if batch:
        lines += ["Batch mode, int8, the reference study repeated (including each worker's start):", "",
                  "| workers | studies | studies/s |", "| ---: | ---: | ---: |"]
        for r in sorted(batch, key=lambda r: (r["extra_info"]["studies"], r["extra_info"]["workers"])):
            x = r["extra_info"]
            lines.append(f"| {x['workers']} | {x['studies']} | {x['studies_per_s']:.2f} |")
        lines.append("")
    _plot_latency(e2e, plots)
    if (plots / "latency.png").is_file():
        lines += ["![latency by engine](benchmarks/results/plots/latency.png)", ""]
    return goals


def _plot_latency(e2e: dict[str, dict[str, Any]], plots: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    engines = [e for e in ("ort-int8", "ort-fp32", "torch-fp32") if e in e2e]
    parts = ["image_encoder", "text_encoder", "read_dicom", "read", "preprocess", "heatmaps", "write"]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    left = [0.0] * len(engines)
    for part in parts:
        values = [e2e[e]["extra_info"]["timings_ms"].get(part, 0.0) for e in engines]
        ax.barh(engines, values, left=left, label=part.replace("_", " "))
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_xlabel("ms, reference study end to end")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    plots.mkdir(parents=True, exist_ok=True)
    fig.savefig(plots / "latency.png", dpi=110)
    plt.close(fig)


def current_accuracy(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Accuracy records of the newest run that scored the full-loss demo model, and of any
    later run (e.g. an ablation scored afterwards): an older run scored other models, or
    another test set, so it is not mixed in."""
    acc = [r for r in runs.values()
           if r["extra_info"].get("kind") in ("model", "baseline", "oracle", "robustness")]
    models = [r["datetime"] for r in acc if r["extra_info"]["kind"] == "model"
              and r["extra_info"].get("variant") == "full"]
    since = max(models) if models else ""
    return [r for r in acc if r["datetime"] >= since]


def section_accuracy(runs: dict[str, dict[str, Any]], lines: list[str], plots: Path) -> dict:
    acc = [r for r in current_accuracy(runs) if r["extra_info"]["kind"] != "robustness"]
    goals: dict[str, Any] = {}
    if not acc:
        return goals
    rows = []
    for r in acc:
        x = r["extra_info"]
        label = x["variant"] if x["kind"] != "model" else \
            f"demo, {x['variant'].replace('_', '-')} loss, {x['precision'].replace('none', 'fp32')}"
        rows.append((x["kind"], label, x))
    order = {"model": 0, "baseline": 1, "oracle": 2}
    rows.sort(key=lambda t: (order[t[0]], t[1]))
    sample = acc[0]["extra_info"]
    lines += ["## Localization accuracy", "", f"Machine: {machine_line(acc[0])}.", "",
              "Command: `pytest benchmarks/bench_accuracy.py --benchmark-only --full "
              "--benchmark-json benchmarks/results/RUN.json`", "",
              f"Standard phantom test set: {sample['sentences']} finding sentences with boxes in the "
              f"{sample['images']} studies that have findings (`lesionloc-train synth --n 200 "
              "--size 2048 --seed 2048 --split-fractions 0,0,1`). Metrics on a grid 512 px long; "
              "mIoU, IoU and Dice on the min-max normalized heatmap (mIoU over thresholds "
              "0.1–0.5, Dice at 0.5).", "",
              "| heatmap | pointing game | CNR | mIoU | Dice | AUROC |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for _, label, x in rows:
        o = x["overall"]
        lines.append(f"| {label} | {f3(o['pointing_game'])} | {f3(o['cnr'])} | {f3(o['miou'])} | "
                     f"{f3(o['dice'])} | {f3(o['auroc'])} |")
    lines.append("")
    models = {(x["variant"], x["precision"]): x for k, _, x in rows if k == "model"}
    missing = [f"{v.replace('_', '-')} loss, {p}" for v in ("full", "global_only", "local_only")
               for p in ("int8", "fp32") if (v, p.replace("fp32", "none")) not in models]
    if models and missing:  # a variant without a bundle is skipped by the suite: say so here
        lines += ["Not measured in this run (no bundle): " + "; ".join(missing) + ".", ""]
    if any(v == "global_only" for v, _ in models):
        lines += ["The global-only model has no trained local heads; its heatmaps are class "
                  "activations of its global projections at the last stage (stride 32, hence "
                  "its coarser grid): `model.heatmap_source` in the README.", ""]
    if models:
        lines += ["Pointing game by finding type:", ""]
        findings = [f for f in FINDING_ORDER if any(f in x["by_finding"] for _, _, x in rows)]
        lines += ["| heatmap | " + " | ".join(findings) + " |",
                  "| --- |" + " ---: |" * len(findings)]
        for _, label, x in rows:
            cells = [f3(x["by_finding"].get(f, {}).get("pointing_game")) for f in findings]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
        lines += _peak_distance_table(rows, findings)
        lines += ["Best global shift of the heatmap peaks (in patches; near zero means no systematic "
                  "offset):", "", "| model | grid | best shift (x, y) | PG unshifted | PG at best shift |",
                  "| --- | --- | --- | ---: | ---: |"]
        for (variant, precision), x in sorted(models.items()):
            dx, dy = x["best_shift_patches"]
            lines.append(f"| {variant}, {precision.replace('none', 'fp32')} | {x['grid']}x{x['grid']} | "
                         f"({dx:+.2f}, {dy:+.2f}) | {x['pointing_game_unshifted']:.3f} | "
                         f"{x['pointing_game_at_best_shift']:.3f} |")
        lines += ["", "A shift is either where the model puts its maximum or a mapping error. "
                  "`python scripts/receptive_field_check.py CHECKPOINT --manifest MANIFEST` "
                  "measures where a trained model's cells actually look (input-gradient "
                  "centroid) against where the runtime draws them.", ""]
        baselines = {x["variant"]: x for k, _, x in rows if k == "baseline"}
        full = models.get(("full", "int8")) or models.get(("full", "none"))
        if full:
            goals["pg_full"] = full["overall"]["pointing_game"]
            goals["cnr_full"] = full["overall"]["cnr"]
            goals["pg_nodule"] = full["by_finding"].get("nodule", {}).get("pointing_game")
            oracle = next((x for k, _, x in rows if k == "oracle"), None)
            if oracle:
                goals["pg_ceiling"] = oracle["overall"]["pointing_game"]
            if "text_prior" in baselines:
                goals["pg_text_prior"] = baselines["text_prior"]["overall"]["pointing_game"]
            if ("global_only", full["precision"]) in models:
                goals["pg_global"] = models[("global_only", full["precision"])]["overall"]["pointing_game"]
            if ("full", "int8") in models and ("full", "none") in models:
                goals["int8_gap"] = abs(models[("full", "int8")]["overall"]["pointing_game"]
                                        - models[("full", "none")]["overall"]["pointing_game"])
        _plot_accuracy(rows, plots)
        if (plots / "accuracy_by_finding.png").is_file():
            lines += ["![pointing game by finding type]"
                      "(benchmarks/results/plots/accuracy_by_finding.png)", ""]
    return goals


def _peak_distance_table(rows: list, findings: list[str]) -> list[str]:
    """Mean distance from each heatmap's peak to its lesion, in mm, by finding type: what the
    pointing game's hit or miss hides (a peak one cell beside a nodule, or on the other lung).
    Only the records that have it (runs before 2026-12-04 did not measure it)."""
    have = [(label, x) for _, label, x in rows
            if "peak_distance" in x["overall"] and x.get("film_long_side_mm")]
    if not have:
        return []
    out = ["Mean distance from the heatmap's peak to the lesion, in mm (the metric is a fraction "
           "of the film's long side, here times the test set's median long side; 0 when the peak "
           "is on the lesion; lower is better):", "",
           "| heatmap | all | " + " | ".join(findings) + " |",
           "| --- | ---: |" + " ---: |" * len(findings)]
    for label, x in have:
        scale = x["film_long_side_mm"]
        cells = [x["overall"]["peak_distance"]] + [
            x["by_finding"].get(f, {}).get("peak_distance") for f in findings]
        out.append(f"| {label} | " + " | ".join(
            "–" if v is None else f"{v * scale:.1f}" for v in cells) + " |")
    return out + [""]


def section_robustness(runs: dict[str, dict[str, Any]], lines: list[str]) -> dict:
    found = [r for r in current_accuracy(runs) if r["extra_info"]["kind"] == "robustness"]
    if not found:
        return {}
    found.sort(key=lambda r: r["extra_info"]["precision"])
    lines += ["## Robustness", "", f"Machine: {machine_line(found[0])}.", "",
              "Command: as for the localization accuracy (`test_robustness`). The standard test "
              "set is made again with the same seed without markers, text and devices "
              "(`--without markers,text,devices`: the same anatomy, findings and report sentences, "
              "pixel for pixel away from what was left out) and in the held-out style "
              "(`--style heldout`: report phrasings and marker and label typefaces that no "
              "training set uses). Peaks: where the heatmap of each finding sentence of the "
              "standard set has its maximum; \"where present\" counts only the films that carry "
              "a marker or burned-in text (or a device).", "",
              "| model | standard PG | without markers, text, devices | held-out style | "
              "peaks on markers or text (where present) | peaks on devices (where present) |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in found:
        x = r["extra_info"]
        pg = x["pointing_game"]
        lines.append(
            f"| full, {x['precision'].replace('none', 'fp32')} | {pg['standard']:.3f} | "
            f"{pg['clean']:.3f} ({x['clean_minus_standard']:+.3f}) | {pg['heldout']:.3f} "
            f"({-x['standard_minus_heldout']:+.3f}) | {x['share_on_marker_text']:.2%} "
            f"({x['peaks_on_marker_text']} of {x['peaks']}; {x['share_on_marker_text_where_present']:.2%} "
            f"of {x['peaks_on_films_with_marker_text']}) | {x['share_on_devices']:.2%} "
            f"({x['share_on_devices_where_present']:.2%} of {x['peaks_on_films_with_devices']}) |")
    lines += ["", "Pointing game by finding type on the three sets:", ""]
    first = found[0]["extra_info"]
    findings = [f for f in FINDING_ORDER if f in first["sets"]["standard"]["by_finding"]]
    lines += ["| model, set | " + " | ".join(findings) + " |", "| --- |" + " ---: |" * len(findings)]
    names = {"standard": "standard", "clean": "without markers, text, devices",
             "heldout": "held-out style"}
    for r in found:
        x = r["extra_info"]
        for key, label in names.items():
            by = x["sets"][key]["by_finding"]
            cells = [f3(by.get(f, {}).get("pointing_game")) for f in findings]
            lines.append(f"| full, {x['precision'].replace('none', 'fp32')}, {label} | "
                         + " | ".join(cells) + " |")
    lines.append("")
    x = next((r["extra_info"] for r in found if r["extra_info"]["precision"] == "int8"),
             found[0]["extra_info"])
    return {"clean_gap": x["clean_minus_standard"], "heldout_gap": x["standard_minus_heldout"],
            "marker_share": x["share_on_marker_text_where_present"]}


def _plot_accuracy(rows: list, plots: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    chosen = [(label, x) for kind, label, x in rows
              if (kind == "model" and x["precision"] == "int8") or kind in ("baseline", "oracle")]
    findings = [f for f in FINDING_ORDER if any(f in x["by_finding"] for _, x in chosen)]
    if not findings:
        return
    fig, ax = plt.subplots(figsize=(9, 3.6))
    width = 0.8 / len(chosen)
    for k, (label, x) in enumerate(chosen):
        values = [x["by_finding"].get(f, {}).get("pointing_game", 0.0) for f in findings]
        ax.bar([i + k * width for i in range(len(findings))], values, width, label=label)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(findings))], findings, fontsize=8)
    ax.set_ylabel("pointing game")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    plots.mkdir(parents=True, exist_ok=True)
    fig.savefig(plots / "accuracy_by_finding.png", dpi=110)
    plt.close(fig)


def section_export(results: Path, lines: list[str]) -> None:
    path = results / "export-full-model.json"
    if not path.is_file():
        return
    record = json.loads(path.read_text())
    lines += ["## Export of the full-size model", "",
              f"Machine: {record.get('machine', '?')}. Command: `python benchmarks/full_model.py --out "
              "DIR` (ResNet-50 at 448 + BERT-base with Bio_ClinicalBERT's config, random weights; "
              "int8 calibrated on 32 generated phantoms).", "",
              "| precision | export (s) | image_encoder.onnx (MB) | text_encoder.onnx (MB) | "
              "parity: patch grid mean / worst | sentence mean / worst |",
              "| --- | ---: | ---: | ---: | --- | --- |"]
    for precision, x in record["exports"].items():
        cos = x["parity"]["cosine"]
        lines.append(f"| {precision.replace('none', 'fp32')} | {x['seconds']:.0f} | "
                     f"{x['bytes']['image_encoder.onnx'] / 1e6:.1f} | "
                     f"{x['bytes']['text_encoder.onnx'] / 1e6:.1f} | "
                     f"{cos['patch_embeds']['mean']:.5f} / {cos['patch_embeds']['min']:.5f} | "
                     f"{cos['sentence_embeds']['mean']:.5f} / {cos['sentence_embeds']['min']:.5f} |")
    lines.append("")


def section_demo(results: Path, lines: list[str]) -> None:
    path = results / "demo-training.json"
    if not path.is_file():
        return
    record = json.loads(path.read_text())
    lines += ["## Demo model training", "", record.get("summary", ""), "",
              f"Command: `{record['command']}`. Each variant's machine is in the last column; "
              "times from different machines are not comparable.", "",
              "| variant | loss terms | local grid | steps | epochs | training time (wall) "
              "| process CPU time | pairs/s | last loss | machine |",
              "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for name, x in record["variants"].items():
        cfg = x.get("config", {})
        weights = cfg.get("loss_weights", {})
        terms = [label for label, keys in (("global", ("global_t2i", "global_i2t")),
                                           ("local", ("local_t2i", "local_i2t")),
                                           ("per sentence", ("local_sentence",)))
                 if any(weights.get(k, 0) > 0 for k in keys)]
        size, stage = cfg.get("image_size", 320), cfg.get("local_stage") or 3
        grid = "stride 32 (class activation)" if weights.get("local_t2i") == 0 \
            else f"stride {4 * 2 ** (stage - 1)}{', fused' if cfg.get('local_fusion') else ''}"
        cpu = x.get("cpu_seconds")
        cpu_text = "–" if cpu is None or cpu != cpu else f"{cpu / 3600:.2f} h"
        wall = x.get("seconds")
        wall_text = "–" if wall is None or wall != wall else f"{wall / 60:.0f} min"
        lines.append(f"| {name} | {' + '.join(terms) or '?'} | {size} px, {grid} | {x['steps']} | "
                     f"{x['epochs']} | "
                     f"{wall_text} | {cpu_text} | {x['mean_pairs_per_s']:.1f} | "
                     f"{x['last_loss']:.3f} | {x.get('machine', record['machine'])} |")
    lines.append("")


def section_training(runs: dict[str, dict[str, Any]], lines: list[str]) -> None:
    train = [r for r in runs.values() if r["name"].startswith("test_tiny_preset_training_step")]
    if not train:
        return
    lines += ["## Training throughput on CPU", "", f"Machine: {machine_line(train[0])}.", "",
              "| preset | batch | pairs/s |", "| --- | ---: | ---: |"]
    for r in sorted(train, key=lambda r: r["extra_info"]["batch_size"]):
        x = r["extra_info"]
        lines.append(f"| {x['preset']} ({x['image_size']} px) | {x['batch_size']} | {x['pairs_per_s']:.1f} |")
    lines.append("")


def _stages(path: Path) -> dict[str, tuple[int, int]]:
    """stages.txt of scripts/gpu_checks.sh: 'name rc=N S s' -> {name: (rc, seconds)}."""
    out = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1].startswith("rc="):
            out[parts[0]] = (int(parts[1][3:]), int(parts[2]))
    return out


def section_gpu(results: Path, lines: list[str]) -> None:
    """Each benchmarks/results/gpu-*/ folder holds what scripts/gpu_checks.sh wrote on one GPU."""
    folders = sorted(p for p in results.glob("gpu-*") if (p / "stages.txt").is_file())
    lines += ["## On a GPU", ""]
    if not folders:
        lines += ["`scripts/gpu_checks.sh OUT` runs every GPU check in one go; no GPU run is "
                  "recorded yet.", ""]
        return
    for folder in folders:
        env = (folder / "env.txt").read_text().splitlines()
        gpu = next((line.split(",")[0] for line in env if line.startswith("NVIDIA")), "a GPU")
        torch_line = next((line for line in env if line.startswith("torch ")), "")
        stages = _stages(folder / "stages.txt")
        command_file = folder / "command.txt"
        command = command_file.read_text().strip() if command_file.is_file() else "scripts/gpu_checks.sh OUT"
        lines += [f"Machine: {gpu} (torch {torch_line.split()[1] if torch_line else '?'}), "
                  f"{env[2] if len(env) > 2 else '?'} CPU cores. Command: `{command}` "
                  f"(raw output in `benchmarks/results/{folder.name}/`).", ""]
        check = folder / "gpu_check.json"
        if check.is_file():
            record = json.loads(check.read_text())
            lines += [f"Full model ({record['image_size']} px ResNet-50 + BERT-base), one training "
                      "step with AdamW, random data (`python -m benchmarks.gpu_check`):", "",
                      "| mode | precision | batch | pairs/s | peak GPU memory |",
                      "| --- | --- | ---: | ---: | ---: |"]
            for run in record["runs"]:
                mode = "DDP, 1 process (torchrun path)" if run["ddp"] else "one GPU"
                lines.append(f"| {mode} | {run['precision']} | {run['batch_size']} | "
                             f"{run['pairs_per_s']:.0f} | {run['peak_memory_gib']:.1f} GiB |")
            lines.append("")
        checks = [f"{name} {'passed' if rc == 0 else f'FAILED (rc {rc})'} in {sec} s"
                  for name, (rc, sec) in stages.items() if name != "gpu_check"]
        meaning = {"fp16-torchrun": "fp16-torchrun and fp16-resume: the training CLI under torchrun "
                                    "with fp16 and its gradient scaler, then resumed from its checkpoint",
                   "run-cuda": "run-cuda: `lesionloc-run --providers cuda` with the machine's CPU-only "
                               "ONNX Runtime, which must warn and fall back"}
        if "gpu_check" in stages:
            meaning["synth"] = "synth rendered the train set alongside gpu_check"
        said = [text for name, text in meaning.items() if name in stages]
        lines += ["Stages: " + "; ".join(checks) + (f" ({'; '.join(said)})" if said else "") + ".", ""]
        metrics = folder / "demo-metrics.jsonl"
        if metrics.is_file() and "demo" in stages:
            rows = [json.loads(line) for line in metrics.read_text().splitlines()]
            steps = [r for r in rows if "loss" in r]
            config = folder / "demo-config.json"
            size = json.loads(config.read_text())["model"]["image"]["image_size"] if config.is_file() else 320
            cpu = results / "demo-training.json"
            cpu_record = json.loads(cpu.read_text()) if cpu.is_file() else {}
            cpu_run = cpu_record.get("variants", {}).get("full", {})
            same = cpu_run.get("config", {}).get("image_size", 320) == size
            cpu_s = cpu_run.get("seconds") if same else None
            versus = f" (on the CPU recipe's machine, {cpu_record.get('machine', '?')}: {cpu_s:,.0f} s)" \
                if cpu_s else ""
            log = folder / "gpu.log"
            wrote = re.search(r"Wrote (\d+) studies", log.read_text()) if log.is_file() else None
            studies = f"{int(wrote.group(1)):,} phantoms" if wrote else "phantoms"
            lines += [f"The demo recipe (`demo` preset at {size} px input, {studies}, "
                      f"{steps[-1]['step']:,} steps) "
                      f"trained in {stages['demo'][1]} s{versus}, last loss {steps[-1]['loss']:.3f}."]
            files = [(name, folder / f"phantoms-{name}.json") for name in ("gpu-trained", "cpu-trained")]
            scored = [(name, json.loads(path.read_text())) for name, path in files if path.is_file()]
            if len(scored) == 2:
                lines += ["", "Both demo models saw the same batches in the same order with the same "
                          "augmentations (the draws depend on seed, epoch and index only); what differs is "
                          "the arithmetic (GPU kernels, TF32 convolutions), so the gap between them is "
                          "one sample of run-to-run spread, not a property of the device."]
            if scored:
                lines += ["", "Exported int8 and scored on the standard test set (`lesionloc-evaluate "
                          "--dataset phantoms --root data/phantoms-test-2048`; micro means):", "",
                          "| trained on | PG | CNR | mIoU | AUROC |", "| --- | ---: | ---: | ---: | ---: |"]
                for name, report in scored:
                    m = report["micro"]["metrics"]
                    lines.append(f"| {name.replace('-trained', '').upper()} | {f3(m['pointing_game'])} | "
                                 f"{f3(m['cnr'])} | {f3(m['miou'])} | {f3(m['auroc'])} |")
            lines.append("")


def section_phantoms(runs: dict[str, dict[str, Any]], lines: list[str]) -> dict:
    gen = [r for r in runs.values() if r["name"] == "test_generate_1000_studies_at_512"]
    if not gen:
        return {}
    r = gen[0]
    seconds = r["stats"]["median"]
    lines += ["## Phantom generation", "", f"Machine: {machine_line(r)}.", "",
              f"1,000 studies at 512 x 512 (DICOM, PNG, report, masks, manifest) with "
              f"{r['extra_info']['workers']} workers: {seconds:.0f} s "
              "(`pytest benchmarks/bench_phantoms.py --benchmark-only --full`).", ""]
    return {"phantoms_1000": seconds}


def goals_section(goals: dict[str, Any], lines: list[str]) -> None:
    """Each goal with the measured value and whether it is met (or not measured)."""
    pg, prior, glob = goals.get("pg_full"), goals.get("pg_text_prior"), goals.get("pg_global")

    def versus(a: float | None, b: float | None) -> str | None:
        return None if a is None or b is None else f"{a:.3f} vs {b:.3f}"

    def margin(a: float | None, b: float | None, need: float) -> bool | None:
        return None if a is None or b is None else a - b >= need

    def cmp(key: str, test: Any) -> tuple[Any, bool | None]:
        value = goals.get(key)
        return value, None if value is None else bool(test(value))

    ceiling = goals.get("pg_ceiling")
    items = [
        ("Full loss pointing game >= 0.75" + (f" (ceiling {ceiling:.3f} at the model's grid)"
                                              if ceiling is not None else ""),
         *cmp("pg_full", lambda v: v >= 0.75)),
        ("... and >= 0.10 above the text prior", versus(pg, prior), margin(pg, prior, 0.10)),
        ("Full loss CNR >= 3.0", *cmp("cnr_full", lambda v: v >= 3.0)),
        ("Full loss pointing game on nodules >= 0.20", *cmp("pg_nodule", lambda v: v >= 0.20)),
        ("Full beats global-only by >= 0.30 PG", versus(pg, glob), margin(pg, glob, 0.30)),
        ("int8 within 0.02 PG of fp32", *cmp("int8_gap", lambda v: v <= 0.02)),
        ("Without markers, text and devices: PG within 0.03",
         *cmp("clean_gap", lambda v: abs(v) <= 0.03)),
        ("Peaks on markers or burned-in text < 1% (films that carry them)",
         *cmp("marker_share", lambda v: v < 0.01)),
        ("Held-out style: PG within 0.05 of the trained style",
         *cmp("heldout_gap", lambda v: abs(v) <= 0.05)),
        *latency_goals(goals),
        ("1,000 phantom studies at 512 px < 120 s", *cmp("phantoms_1000", lambda v: v < 120)),
    ]
    lines += ["## Goals", "", "| goal | measured | |", "| --- | --- | --- |"]
    for name, value, ok in items:
        shown = value if isinstance(value, str) else ("–" if value is None else f"{value:.3f}")
        verdict = "not measured" if ok is None else ("met" if ok else "NOT met")
        lines.append(f"| {name} | {shown} | {verdict} |")
    lines.append("")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    args = parser.parse_args()
    runs = load_runs(args.results)
    plots = args.results / "plots"
    lines = ["# Benchmarks", "",
             "Generated by `python scripts/benchmarks_report.py` from the JSON files in "
             "`benchmarks/results/` (every run is kept there). Do not edit by hand.", ""]
    body: list[str] = []
    goals: dict[str, Any] = {}
    goals.update(section_accuracy(runs, body, plots))
    goals.update(section_robustness(runs, body))
    goals.update(section_latency(runs, body, plots, args.results))
    section_demo(args.results, body)
    section_export(args.results, body)
    section_training(runs, body)
    section_gpu(args.results, body)
    goals.update(section_phantoms(runs, body))
    goals_section(goals, lines)
    lines += body
    args.out.write_text("\n".join(lines).rstrip() + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
