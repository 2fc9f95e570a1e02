"""Regenerate the README's picture of the study page: the demo model on its first example
study (what the quick start writes), opened from disk in headless Chromium, screenshotted.

    python scripts/viewer_screenshot.py [--out docs/viewer.png]

Needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the browser launcher the viewer's tests use

from browser import chromium, file_url, screenshot, wait_ready  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "viewer.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    args = parser.parse_args()

    import cv2

    from lesionloc_runtime.imageio import read_image
    from lesionloc_runtime.localizer import DEMO_EXAMPLES, Localizer
    from lesionloc_runtime.outputs import write_study

    with tempfile.TemporaryDirectory(prefix="lesionloc-screenshot-") as work:
        radiograph = read_image(DEMO_EXAMPLES / "example1.dcm")
        result = Localizer.load().localize(radiograph, DEMO_EXAMPLES / "example1.txt")
        page = write_study(result, radiograph, Path(work)).parent / "study.html"
        with chromium(args.width, args.height) as driver:
            driver.get(file_url(page))
            wait_ready(driver)
            picture = screenshot(driver)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:  # a 256-colour palette keeps the committed picture small (Pillow comes with matplotlib)
        from PIL import Image

        palette = Image.fromarray(picture).quantize(256, method=Image.Quantize.FASTOCTREE,
                                                    dither=Image.Dither.FLOYDSTEINBERG)
        palette.save(args.out, optimize=True)
    except ImportError:
        cv2.imwrite(str(args.out), picture[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
