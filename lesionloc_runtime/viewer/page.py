"""The study page: the radiograph written once, one small heatmap layer per grounded sentence,
and `study.html`, whose script draws them and the boxes in the browser. The page opens the film
fitted to the window; full resolution (one image pixel to a screen pixel) is one click away.
The page's script, style and the study's data are inline; it makes no request."""

from __future__ import annotations

import functools
import json
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from lesionloc_runtime.heatmap import Heatmap
from lesionloc_runtime.render import base_grey, display_size, encode_png, window_to_uint8
from lesionloc_runtime.results import HeatmapLayer, ImageFile, StudyResult
from lesionloc_runtime.viewer import jpeg

__all__ = [
    "LAYER_SIZE",
    "LOSSLESS_SIZE",
    "PAGE",
    "STATIC",
    "layer_levels",
    "page_template",
    "script_json",
    "study_page",
    "submit_page_files",
]

PAGE = "study.html"
_PNG_IMAGE = "radiograph.png"
_JPEG_IMAGE = "radiograph.jpg"
# A film up to this long side is written losslessly as PNG (1 MB at most); a larger one as JPEG.
# The film is written once, at its full resolution: a second, screen-size copy cost a study 4 ms
# of writing and 5.5 ms of CPU (2048 px film, AMX Xeon, 2 cores; docs/latency.md), and the
# browser shrinks the one film to the window as well.
LOSSLESS_SIZE = 1024
# Long side of a heatmap layer: finer than the model's refined grid on any input (8 px per layer
# pixel at 2048 px against 9-13 px between refined nodes), 15 KB as PNG.
LAYER_SIZE = 256
# A large film's JPEG is a third of the time of our PNG encoder on a 2048 px film; at 92 its
# artefacts are below the film's own noise.
_FULL_JPEG_QUALITY = 92
# The longest `_submit_film_jpeg` waits for its bands to start: they start within microseconds
# in an idle pool; a pool that other threads keep busy costs a study this much at most.
_BAND_START_WAIT = 0.01
STATIC = Path(__file__).with_name("static")


def _layer_name(sentence_index: int) -> str:
    return f"sentence_{sentence_index + 1:02d}_layer.png"


def layer_levels(heatmap: Heatmap, width: int, height: int) -> tuple[np.ndarray, float, float]:
    """The heatmap rendered at (width, height) over the whole image as 8-bit levels: 0 where it
    has no value (NaN), 1..255 from its minimum to its maximum; and that minimum and maximum."""
    values = heatmap.render(width, height)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros((height, width), np.uint8), 0.0, 0.0
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    gain = 254.0 / (hi - lo) if hi > lo else 0.0
    levels = np.rint(1.0 + (np.where(finite, values, lo) - lo) * gain)
    levels[~finite] = 0
    return levels.astype(np.uint8), lo, hi


def _submit_film_jpeg(film: np.ndarray, pool: ThreadPoolExecutor,
                      write: Callable[[str, bytes], None]) -> list[Future[Any]]:
    """The film's JPEG, in two bands on two of the pool's threads when the film is
    large (`jpeg.py`); the lower band's job joins the two and writes the file. It waits only on
    the upper band's job, which the pool (first in, first out) started before it.
    Returns once both bands have started (`_BAND_START_WAIT` at most): the caller goes on
    with the heatmap layers in Python, holding the interpreter lock, and a pool thread that
    has yet to take the lock to start its band waited for it up to the interpreter's switch
    interval (5 ms). Waiting here lets the bands into OpenCV, which runs without the lock:
    the study page's writing took 0.6 to 1.0 ms less (14.8 against 15.4 in 80 alternated
    studies, 14.6 against 15.6 in 60; the AMX Xeon, 2 cores)."""
    split = jpeg.split_row(film.shape[0])
    if split is None:
        return [pool.submit(lambda: write(_JPEG_IMAGE, jpeg.encode_grey(film, _FULL_JPEG_QUALITY)))]
    started = (threading.Event(), threading.Event())

    def band(k: int, rows: np.ndarray) -> bytes:
        started[k].set()
        return jpeg.encode_band(rows, _FULL_JPEG_QUALITY)

    upper = pool.submit(band, 0, film[:split])

    def lower_and_write() -> None:
        lower = band(1, film[split:])
        try:
            data = jpeg.join_bands(upper.result(), lower, split, film.shape[0])
        except ValueError:  # an OpenCV whose encoder codes the two bands differently
            data = jpeg.encode_grey(film, _FULL_JPEG_QUALITY)
        write(_JPEG_IMAGE, data)

    jobs = [upper, pool.submit(lower_and_write)]
    deadline = time.monotonic() + _BAND_START_WAIT  # a pool busy with other work: go on
    for event in started:
        event.wait(max(0.0, deadline - time.monotonic()))
    return jobs


def submit_page_files(result: StudyResult, pool: ThreadPoolExecutor,
                      write: Callable[[str, bytes], None]) -> list[Future[Any]]:
    """Start writing the radiograph (once, at full resolution) and every grounded sentence's
    heatmap layer through `write(name, data)`; records them in `result` (radiograph_images, its
    files, each sentence's `layer` and files["layer"]). The film is the longest job, so it goes
    first."""
    width, height = result.width, result.height
    jobs: list[Future[Any]] = []
    if max(width, height) <= LOSSLESS_SIZE:
        film = ImageFile(_PNG_IMAGE, width, height)
        jobs.append(pool.submit(lambda: write(_PNG_IMAGE, encode_png(base_grey(result, width)))))
    else:
        film = ImageFile(_JPEG_IMAGE, width, height)
        jobs += _submit_film_jpeg(window_to_uint8(result.display, result.display_window), pool,
                                  write)
    # Documents of version 2 before the film was written once named a screen-size PNG here
    # besides the full resolution; both keys now name the one film.
    result.radiograph_images = {"screen": film, "full": film}
    result.files["radiograph"] = film.file
    layer_w, layer_h = display_size(width, height, LAYER_SIZE)
    for sentence in result.sentences:
        if sentence.heatmap is None:
            continue
        levels, lo, hi = layer_levels(sentence.heatmap, layer_w, layer_h)
        name = _layer_name(sentence.index)
        sentence.layer = HeatmapLayer(name, layer_w, layer_h, lo, hi)
        sentence.files["layer"] = name
        jobs.append(pool.submit(write, name, encode_png(levels)))
    return jobs


def _page_data(doc: dict[str, Any], index_link: bool = False) -> dict[str, Any]:
    """What the page shows, from the study document: no source path, and identifiers only when
    the document has them (--include-identifiers)."""
    model = doc.get("model") or {}
    data = {
        "study_id": doc["study_id"],
        "notice": doc.get("notice", ""),
        "model": {key: model.get(key) for key in ("name", "demo", "quantization")},
        "image": {key: doc["input"].get(key) for key in ("width", "height", "pixel_spacing_mm")},
        "radiograph_images": doc.get("radiograph_images", {}),
        "report_image_score": doc.get("report_image_score"),
        "sentences": doc["sentences"],
        "index": "../index.html" if index_link else None,
    }
    if doc.get("identifiers"):
        data["identifiers"] = doc["identifiers"]
    return data


def study_page(doc: dict[str, Any], index_link: bool = False) -> str:
    """study.html for a study document (after its files are set)."""
    head, tail = page_template("study")
    return head + script_json(_page_data(doc, index_link)) + tail


def script_json(value: Any) -> str:
    """JSON that is safe inside <script type="application/json">: no '<', '>' or '&' can end
    the element or open a comment whatever the report says, and NaN or infinity (which
    JSON.parse refuses) become null."""
    try:  # a study's document has no NaN as a rule: then the copy `_finite` makes is not needed
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(value), ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


@functools.cache
def page_template(name: str) -> tuple[str, str]:
    """`static/NAME.html` with NAME.css and NAME.js inlined, split where the data goes."""
    html = (STATIC / f"{name}.html").read_text(encoding="utf-8")
    html = html.replace("{{STYLE}}", (STATIC / f"{name}.css").read_text(encoding="utf-8"))
    html = html.replace("{{SCRIPT}}", (STATIC / f"{name}.js").read_text(encoding="utf-8"))
    head, tail = html.split("{{DATA}}")
    return head, tail
