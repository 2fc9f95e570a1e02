"""The study page and the batch index in a real browser (headless Chromium, opened from disk):
a chosen sentence's heatmap is lit where study.json puts its peak, the keys step and toggle,
no request leaves the machine, and a 500-study index filters. Without Chromium these skip;
under CI (LESIONLOC_REQUIRE_BROWSER=1, set by .ci/run) a missing browser fails them."""

from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path

import cv2
import numpy as np
import pytest
from browser import chromium, file_url, find_browser, requested_urls, screenshot, wait_ready

from lesionloc_runtime.heatmap import Heatmap
from lesionloc_runtime.imageio import read_image
from lesionloc_runtime.localizer import DEMO_EXAMPLES, Localizer
from lesionloc_runtime.outputs import OutputOptions, write_study
from lesionloc_runtime.viewer.index import index_page

SCRIPTED_TEXT = '</script><script>document.title="injected"</script> & <b>bold</b>'


@pytest.fixture(scope="module")
def driver():
    found = find_browser()
    if isinstance(found, str):
        if os.environ.get("LESIONLOC_REQUIRE_BROWSER") == "1":
            pytest.fail(f"LESIONLOC_REQUIRE_BROWSER=1 but {found}")
        pytest.skip(found)
    with chromium(1280, 800) as browser:
        yield browser


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """The demo model on its first example, resized to 1300x1040 (not square, so letterbox
    padding matters; over 1024 px, so a full-resolution film is written), with a query whose
    text is markup, and with the left third of the last sentence's heatmap without values (as
    a centre-cropping model leaves it)."""
    work = tmp_path_factory.mktemp("viewer")
    pixels = read_image(DEMO_EXAMPLES / "example1.dcm").pixels
    image = work / "wide.png"
    cv2.imwrite(str(image), np.rint(cv2.resize(pixels, (1300, 1040)) * 65535).astype(np.uint16))
    localizer = Localizer.load()
    result = localizer.localize(image, DEMO_EXAMPLES / "example1.txt", study_id="wide",
                                queries=[SCRIPTED_TEXT])
    last = result.grounded[-1]
    grid = last.heatmap.grid.copy()
    grid[:, : grid.shape[1] // 3] = np.nan
    last.heatmap = Heatmap(grid, last.heatmap.letterbox, last.heatmap.stride, last.heatmap.origin)
    last.peak, last.boxes = last.heatmap.peak(), last.heatmap.boxes(localizer.bundle.heatmap)
    write_study(result, read_image(image), work / "out", OutputOptions(index_link=True))
    return work / "out" / "wide"


def open_page(driver, page: Path) -> None:
    requested_urls(driver)  # drop what the browser asked for before this page
    driver.get(file_url(page))
    wait_ready(driver)


def js(driver, script: str, *args):
    return driver.execute_script(script, *args)


def film_rect(driver) -> dict:
    return js(driver, "var r = document.getElementById('film').getBoundingClientRect();"
                      "return {x: r.left, y: r.top, w: r.width, h: r.height};")


def set_opacity(driver, value: float) -> None:
    js(driver, "var s = document.getElementById('opacity'); s.value = arguments[0];"
               "s.dispatchEvent(new Event('input'));", value)


def click_sentence(driver, index: int) -> None:
    driver.find_element("css selector", f"#sentences li[data-index='{index}']").click()


def shown_layer(driver) -> int | None:
    return js(driver, "var v = [...document.querySelectorAll('#layers img')].filter("
                      "i => !i.hidden); return v.length === 1 ? Number(v[0].dataset.index) : null;")


def press(driver, *keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    actions = ActionChains(driver)
    for key in keys:
        actions.send_keys(key)
    actions.perform()


def to_screen(rect: dict, doc: dict, x: float, y: float) -> tuple[float, float]:
    return (rect["x"] + (x + 0.5) * rect["w"] / doc["input"]["width"],
            rect["y"] + (y + 0.5) * rect["h"] / doc["input"]["height"])


def test_chosen_sentence_is_lit_at_its_peak_and_nowhere_hotter(driver, study):
    """At full opacity a layer's top level is jet's dark red (128, 0, 0): the pixel of the page
    closest to it must be where study.json puts the peak, and the heatmap key must clear it."""
    doc = json.loads((study / "study.json").read_text())
    open_page(driver, study / "study.html")
    set_opacity(driver, 1.0)
    press(driver, "b")  # the peak's cross would cover the pixels under test
    grounded = [s for s in doc["sentences"] if s["grounded"]][:3]
    for sentence in grounded:
        click_sentence(driver, sentence["index"])
        assert shown_layer(driver) == sentence["index"]
        rect, shot = film_rect(driver), screenshot(driver)
        x0, y0 = int(rect["x"]), int(rect["y"])
        film = shot[y0 : y0 + int(rect["h"]), x0 : x0 + int(rect["w"])].astype(int)
        distance = np.abs(film[..., 0] - 128) + film[..., 1] + film[..., 2]
        hy, hx = np.unravel_index(int(np.argmin(distance)), distance.shape)
        px, py = to_screen(rect, doc, sentence["peak"]["x"], sentence["peak"]["y"])
        assert distance[hy, hx] < 40, "no pixel shows the heatmap's top colour"
        tolerance = 4 + 0.02 * rect["w"]
        assert np.hypot(x0 + hx - px, y0 + hy - py) <= tolerance, (sentence["text"], hx, hy)
        press(driver, "h")  # heatmap off: the same pixel is grey film again
        grey = screenshot(driver)[y0 + hy, x0 + hx].astype(int)
        assert np.ptp(grey) <= 2 and shown_layer(driver) is None
        press(driver, "h")


def test_keys_step_through_sentences_and_toggle_boxes_hover_previews(driver, study):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    doc = json.loads((study / "study.json").read_text())
    open_page(driver, study / "study.html")
    first = next(s["index"] for s in doc["sentences"] if s["grounded"])
    current = "return Number(document.querySelector('#sentences li.current').dataset.index);"
    assert js(driver, current) == first and shown_layer(driver) == first
    press(driver, Keys.ARROW_DOWN)
    assert js(driver, current) == first + 1
    assert shown_layer(driver) == (first + 1 if doc["sentences"][first + 1]["grounded"] else None)
    press(driver, Keys.ARROW_UP, Keys.ARROW_UP)
    above = max(first - 1, 0)  # the first sentence of the page stops the keys
    assert js(driver, current) == above
    if first > above:
        press(driver, Keys.ARROW_DOWN)
    assert js(driver, current) == first
    boxes = len(doc["sentences"][first]["boxes"])
    count = "return document.querySelectorAll('#marks rect').length;"
    assert boxes and js(driver, count) == boxes
    press(driver, "b")
    assert js(driver, count) == 0
    press(driver, "b")
    assert js(driver, count) == boxes
    last = doc["sentences"][-1]["index"]
    item = driver.find_element("css selector", f"#sentences li[data-index='{last}']")
    ActionChains(driver).move_to_element(item).perform()
    assert shown_layer(driver) == last  # hovering previews, leaving returns to the chosen one
    ActionChains(driver).move_to_element(driver.find_element("id", "study-title")).perform()
    assert shown_layer(driver) == first


def test_page_makes_no_network_request(driver, study, tmp_path):
    doc = json.loads((study / "study.json").read_text())
    open_page(driver, study / "study.html")
    press(driver, "f", "+", "-", "0")
    js(driver, "return document.getElementById('film').decode();")
    urls = requested_urls(driver)
    names = {urllib.parse.unquote(u.rsplit("/", 1)[-1]) for u in urls if u.startswith("file:")}
    layers = {s["layer"]["file"] for s in doc["sentences"] if "layer" in s}
    assert {"study.html", "radiograph.jpg"} | layers <= names
    assert all(u.startswith(("file:", "data:")) for u in urls), urls
    # the log does see a request that leaves the machine (this check can fail)
    probe = tmp_path / "probe.html"
    probe.write_text('<img src="http://lesionloc.invalid/x.png">')
    driver.get(file_url(probe))
    assert "http://lesionloc.invalid/x.png" in requested_urls(driver)


def test_page_shows_the_notice_and_markup_in_a_report_as_text(driver, study):
    doc = json.loads((study / "study.json").read_text())
    open_page(driver, study / "study.html")
    notice = driver.find_element("id", "notice")
    assert notice.text == doc["notice"] and "DEMO MODEL" in notice.text
    assert driver.title == "wide · lesionloc"
    texts = [e.text for e in driver.find_elements("css selector", "#sentences li .text")]
    assert texts[-1] == SCRIPTED_TEXT and js(driver, "return document.scripts.length;") == 2
    assert driver.find_element("id", "index-link").is_displayed()


def test_film_zooms_pans_brightens_and_switches_to_full_resolution(driver, study):
    from selenium.webdriver.common.action_chains import ActionChains

    open_page(driver, study / "study.html")
    fitted = film_rect(driver)
    press(driver, "+")
    zoomed = film_rect(driver)
    assert zoomed["w"] == pytest.approx(fitted["w"] * 1.5, rel=1e-3)
    stage = driver.find_element("id", "stage")
    ActionChains(driver).move_to_element(stage).click_and_hold().move_by_offset(60, 40) \
        .release().perform()
    moved = film_rect(driver)
    assert (moved["x"] - zoomed["x"], moved["y"] - zoomed["y"]) == pytest.approx((60, 40), abs=2)
    press(driver, "0")
    assert film_rect(driver) == pytest.approx(fitted)
    press(driver, "h")
    rect = film_rect(driver)
    centre = (int(rect["y"] + rect["h"] / 2), int(rect["x"] + rect["w"] / 2))
    before = screenshot(driver)[centre].astype(int).sum()
    js(driver, "var s = document.getElementById('brightness'); s.value = 1.6;"
               "s.dispatchEvent(new Event('input'));")
    assert screenshot(driver)[centre].astype(int).sum() > before + 30
    press(driver, "+", "f")  # full resolution: one film pixel to one CSS pixel
    film = js(driver, "var f = document.getElementById('film'); return f.decode().then("
                      "() => [f.naturalWidth, f.getAttribute('src')]);")
    assert film == [1300, "radiograph.jpg"]
    assert film_rect(driver)["w"] == pytest.approx(1300, abs=1)
    assert js(driver, "return document.getElementById('toggle-full').ariaPressed;") == "true"
    press(driver, "f")
    assert film_rect(driver) == pytest.approx(fitted)
    assert js(driver, "return document.getElementById('toggle-full').ariaPressed;") == "false"


def test_heatmap_without_values_is_transparent_and_has_no_peak_there(driver, study):
    """The last grounded sentence's heatmap has no values on the left third (set up above)."""
    doc = json.loads((study / "study.json").read_text())
    sentence = [s for s in doc["sentences"] if s["grounded"]][-1]
    assert sentence["peak"]["x"] > doc["input"]["width"] / 3
    open_page(driver, study / "study.html")
    set_opacity(driver, 1.0)
    click_sentence(driver, sentence["index"])
    press(driver, "b")
    rect = film_rect(driver)
    left = (slice(int(rect["y"]) + 5, int(rect["y"] + rect["h"]) - 5),
            slice(int(rect["x"]) + 5, int(rect["x"] + rect["w"] * 0.25)))
    lit = screenshot(driver)[left].astype(int)
    press(driver, "h")
    bare = screenshot(driver)[left].astype(int)
    assert np.abs(lit - bare).max() <= 2
    press(driver, "h", "b")


def _index_rows(n: int) -> list[dict]:
    rng = np.random.default_rng(3)
    kinds = ["finding", "negated", "normal", "other"]
    words = ["pneumothorax", "effusion", "nodule", "consolidation", "atelectasis"]
    rows = []
    for k in range(n):
        sentences = [{"k": kinds[rng.integers(4)], "s": round(float(rng.uniform(-1, 1)), 3),
                      "t": f"Sentence about {words[rng.integers(5)]} {j}."} for j in range(4)]
        rows.append({"id": f"study {k:03d}#" if k == 7 else f"study{k:03d}", "model": "m",
                     "demo": True, "notice": "DEMO MODEL", "size": [512, 512],
                     "sentences": sentences})
    return rows


def test_index_of_500_studies_searches_filters_and_opens_a_study(driver, tmp_path):
    rows = _index_rows(500)
    (tmp_path / "index.html").write_text(index_page(rows), encoding="utf-8")
    (tmp_path / "study 007#").mkdir()
    (tmp_path / "study 007#" / "study.html").write_text("<title>seven</title>")
    open_page(driver, tmp_path / "index.html")
    visible = "return [...document.querySelectorAll('#studies tbody tr')].filter(r => !r.hidden).length;"
    assert js(driver, visible) == 500
    search = driver.find_element("id", "search")
    search.send_keys("pneumothorax")
    assert js(driver, visible) == sum(
        any("pneumothorax" in s["t"] for s in r["sentences"]) for r in rows)
    search.clear()
    search.send_keys(" ")  # clear() fires no input event
    js(driver, "var k = document.getElementById('kind'); k.value = 'negated';"
               "k.dispatchEvent(new Event('change'));")
    driver.find_element("id", "min-score").send_keys("0.5")
    expected = sum(any(s["k"] == "negated" and s["s"] >= 0.5 for s in r["sentences"]) for r in rows)
    assert 0 < js(driver, visible) == expected < 500
    assert driver.find_element("id", "count").text == f"{expected} of 500 studies shown"
    requested_urls(driver)
    js(driver, "document.getElementById('kind').value = ''; document.getElementById('min-score')"
               ".value = ''; document.getElementById('search').value = 'study 007#';"
               "document.getElementById('search').dispatchEvent(new Event('input'));")
    assert js(driver, visible) == 1
    driver.find_element("css selector", "#studies tbody tr:not([hidden]) td.sentences").click()
    assert driver.current_url == file_url(tmp_path) + "/study%20007%23/study.html"
    assert driver.title == "seven"


def test_page_marks_uncertain_sentences_and_highlights_the_grounded_span(driver, study):
    """Fields the report parser adds (absent from older documents): the span's offsets count
    code points, as Python does, so a character outside the BMP before it must not shift it."""
    from lesionloc_runtime.viewer.page import study_page

    doc = json.loads((study / "study.json").read_text())
    first, second = [s for s in doc["sentences"] if s["grounded"]][:2]
    first["text"] = "\U0001fac1 Right basal opacity, possibly pneumonia."
    first["grounded_span"] = {"start": 2, "end": 21, "text": first["text"][2:21]}
    first["uncertain"] = True
    second["kind"], second["grounded"] = "other", False
    (study / "fields.html").write_text(study_page(doc), encoding="utf-8")
    open_page(driver, study / "fields.html")
    item = driver.find_element("css selector", f"#sentences li[data-index='{first['index']}']")
    assert item.find_element("css selector", "mark").text == "Right basal opacity"
    assert "uncertain" in item.get_attribute("class") and "uncertain" in item.text
    other = driver.find_element("css selector", f"#sentences li[data-index='{second['index']}']")
    assert "muted" in other.get_attribute("class") and "no heatmap" in other.text
    assert not driver.find_elements("css selector", "#index-link:not([hidden])")


def test_the_page_served_by_a_web_server_shows_its_pictures(driver, study):
    """A hospital shares OUT through its intranet web server: the page's own security policy
    allowed pictures from file: and data: only, so over HTTP it showed no radiograph and no
    heatmap (each blocked, naturalWidth 0). Images of the page's own origin are allowed now,
    and still none from elsewhere."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(study.parent))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        origin = f"http://127.0.0.1:{server.server_address[1]}/"
        base = f"{origin}{study.name}/"
        requested_urls(driver)
        driver.get(base + "study.html")
        wait_ready(driver)
        sizes = js(driver, "return [...document.images].filter(i => i.getAttribute('src'))"
                           ".map(i => [i.getAttribute('src'), i.naturalWidth]);")
        assert sizes and all(width > 0 for _, width in sizes), sizes
        urls = requested_urls(driver)
        assert all(url.startswith((origin, "data:")) for url in urls), urls  # and a favicon
        policy = js(driver, "return document.querySelector('meta[http-equiv]').content;")
        assert "default-src 'none'; img-src 'self' file: data:;" in policy  # no other origin
    finally:
        server.shutdown()
        server.server_close()
