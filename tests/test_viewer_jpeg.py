"""The full-resolution film's JPEG in two bands: the joined file is the film encoded whole,
pixel for pixel, for OpenCV and Pillow alike; bands coded differently are refused, and the
study page then encodes the film whole."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from lesionloc_runtime.viewer import jpeg, page


def _film(height: int, width: int) -> np.ndarray:
    """A film-like picture: smooth anatomy, sharp edges and noise (every coefficient busy)."""
    rng = np.random.default_rng(height * width)
    y, x = np.mgrid[0:height, 0:width]
    smooth = 120 + 80 * np.sin(x / 97.0) * np.cos(y / 61.0)
    edges = 40.0 * ((x // 150 + y // 110) % 2)
    return np.clip(smooth + edges + rng.normal(0, 12, (height, width)), 0, 255).astype(np.uint8)


def _decode(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    return (cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED),
            np.asarray(Image.open(io.BytesIO(data))))


@pytest.mark.parametrize("height,width", [(1000, 1531), (2048, 2048), (517, 64)])
def test_joined_bands_decode_to_the_film_encoded_whole(height, width):
    film = _film(height, width)
    split = jpeg.split_row(height)
    assert split is not None and split % 64 == 0 and abs(split - height / 2) < 64
    joined = jpeg.join_bands(jpeg.encode_band(film[:split], 92),
                             jpeg.encode_band(film[split:], 92), split, height)
    whole = jpeg.encode_grey(film, 92)
    expected = cv2.imdecode(np.frombuffer(whole, np.uint8), cv2.IMREAD_UNCHANGED)
    for decoded in _decode(joined):
        assert decoded.shape == (height, width)
        assert np.array_equal(decoded, expected)
    # a restart marker and a byte of padding per row of blocks, and the DC predictions restarted
    assert 0 < len(joined) - len(whole) < 8 * (height // 8 + 1)


def test_small_film_is_not_split():
    assert jpeg.split_row(511) is None and jpeg.split_row(512) == 256


def test_bands_coded_differently_are_refused():
    film = _film(1024, 640)
    upper, lower = jpeg.encode_band(film[:512], 92), jpeg.encode_band(film[512:], 80)
    with pytest.raises(ValueError, match="headers differ"):
        jpeg.join_bands(upper, lower, 512, 1024)
    with pytest.raises(ValueError, match="multiple of 64"):
        jpeg.join_bands(upper, jpeg.encode_band(film[500:], 92), 500, 1024)
    with pytest.raises(ValueError, match="below the film's 512"):
        jpeg.join_bands(upper, lower, 512, 512)
    with pytest.raises(ValueError, match="truncated"):
        jpeg.join_bands(upper[:-2], jpeg.encode_band(film[512:], 92), 512, 1024)
    with pytest.raises(ValueError, match="not a JPEG"):
        jpeg.join_bands(b"GIF89a" + upper, lower, 512, 1024)


def _written(film: np.ndarray, threads: int = 2) -> bytes:
    from concurrent.futures import ThreadPoolExecutor, wait

    files: dict[str, bytes] = {}
    with ThreadPoolExecutor(threads) as pool:
        jobs = page._submit_film_jpeg(film, pool, files.__setitem__)
        wait(jobs)
        for job in jobs:
            job.result()
    return files["radiograph.jpg"]


def test_page_writes_the_film_in_bands_or_whole_with_the_same_pixels(monkeypatch):
    film = _film(1200, 1500)
    expected = _decode(jpeg.encode_grey(film, 92))[0]
    banded = _written(film)
    assert b"\xff\xdd" in banded[:1000]  # a restart interval: it was written in bands
    assert np.array_equal(_decode(banded)[0], expected)

    def refuse(*args):
        raise ValueError("the two bands' JPEG headers differ")

    monkeypatch.setattr(jpeg, "join_bands", refuse)
    whole = _written(film)
    assert b"\xff\xdd" not in whole[:1000] and np.array_equal(_decode(whole)[0], expected)


def test_a_pool_of_one_thread_writes_the_banded_film_without_waiting_on_itself():
    """The lower band's job waits on the upper band's: with one thread the upper one has run
    first (first in, first out), so a one-core machine's pool does not deadlock."""
    film = _film(1024, 700)
    assert np.array_equal(_decode(_written(film, threads=1))[0],
                          _decode(jpeg.encode_grey(film, 92))[0])


def test_both_bands_have_started_when_the_film_jobs_are_handed_back():
    """The caller goes on in Python (the heatmap layers) holding the interpreter lock; a band
    not yet started would wait for the lock instead of encoding beside it."""
    from concurrent.futures import ThreadPoolExecutor, wait

    film = _film(2048, 2048)
    files: dict[str, bytes] = {}
    with ThreadPoolExecutor(2) as pool:
        for _ in range(5):
            jobs = page._submit_film_jpeg(film, pool, files.__setitem__)
            started = [job.running() or job.done() for job in jobs]
            wait(jobs)
            assert started == [True, True]
