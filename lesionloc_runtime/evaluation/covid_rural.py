"""Reader of COVID Rural (Desai et al. 2020, TCIA "COVID-19-AR", with the opacity masks of
Tang et al., github haimingt/opacity_segmentation_covid_chest_X_ray): image and lesion-mask
files paired by name. Accepted layouts, first match wins:

    ROOT/jpgs/<name>.jpg + ROOT/pngs_masks/<name>.png            (covid_rural_annot/ itself)
    ROOT/covid_rural_annot/jpgs/... + .../pngs_masks/...          (the repository checkout)
    ROOT/images/<stem>.<png|jpg|dcm|tif> + ROOT/masks/<stem>.png  (any image/mask set)

A mask pixel > 0 is lesion. Images whose mask is empty are negatives and are not scored."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from lesionloc_runtime.errors import DataError, ImageReadError
from lesionloc_runtime.evaluation.records import (
    AnnotatedImage,
    DatasetStream,
    Grounding,
    ReadLog,
    Split,
    relative,
)
from lesionloc_runtime.imageio import read_raster_array

__all__ = ["read_covid_rural"]

_CATEGORY = "opacity"
_LAYOUTS = (("jpgs", "pngs_masks"), ("covid_rural_annot/jpgs", "covid_rural_annot/pngs_masks"),
           ("images", "masks"))
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".dcm", ".tif", ".tiff")
_MASK_SUFFIXES = (".png", ".tif", ".tiff", ".bmp")


def _find_layout(root: Path) -> tuple[Path, Path]:
    """(image folder, mask folder) of the first accepted layout present in `root`."""
    for images, masks in _LAYOUTS:
        if (root / images).is_dir() and (root / masks).is_dir():
            return root / images, root / masks
    raise DataError(
        f"{root}: no jpgs/ + pngs_masks/ (COVID Rural) nor images/ + masks/ folders found"
    )


def read_covid_rural(
    root: Path, *, split: Split, prompts: Mapping[str, str], images: Path | None = None
) -> DatasetStream:
    """Pair images and masks by file stem; masks are read lazily, one image at a time."""
    split.require_no_name("COVID Rural")
    image_dir, mask_dir = _find_layout(root)
    image_dir = images or image_dir
    log = ReadLog()
    image_files = _by_stem(image_dir, _IMAGE_SUFFIXES)
    mask_files = _by_stem(mask_dir, _MASK_SUFFIXES)
    if not mask_files:
        raise DataError(f"{mask_dir}: no mask files (.png) found")
    pairs: list[tuple[str, Path, Path]] = []
    for stem, mask in sorted(mask_files.items()):
        if not split.keeps_id(stem):
            continue
        image = image_files.get(stem)
        if image is None:
            log.missing(relative(image_dir / f"{stem}.jpg", root))
            continue
        pairs.append((stem, image, mask))
    for stem in sorted(image_files.keys() - mask_files.keys()):
        if split.keeps_id(stem):
            log.warn("skipped", relative(image_files[stem], root), "no mask with this name; "
                     "not scored")
    prompt = prompts[_CATEGORY]
    return DatasetStream("covid-rural", root, mask_dir, split.name,
                         _stream(pairs, prompt, root, log), len(pairs), log)


def _by_stem(directory: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.suffix.lower() in suffixes:
            found.setdefault(path.stem, path)
    return found


def _read_mask(path: Path) -> np.ndarray:
    """A lesion mask file as a boolean array (pixel > 0); ValueError when unreadable. Read by
    the image reader's raster path: a header declaring 50000x50000 is refused before
    decoding, and what libpng prints is caught."""
    try:
        arr, _ = read_raster_array(path)
    except ImageReadError as exc:
        raise ValueError(f"the mask file is not a readable image ({exc})") from None
    if arr.ndim == 3:
        arr = arr[:, :, :3].max(axis=2)  # a colour-saved mask: any lit channel is lesion
    return arr > 0


def _stream(
    pairs: list[tuple[str, Path, Path]], prompt: str, root: Path, log: ReadLog
) -> Iterator[AnnotatedImage]:
    for stem, image, mask_path in pairs:
        try:
            mask = _read_mask(mask_path)
        except (ValueError, OSError) as exc:
            log.malformed(relative(mask_path, root), None, str(exc))
            continue
        if not mask.any():
            log.negative_images += 1
            continue
        size = (int(mask.shape[1]), int(mask.shape[0]))
        yield AnnotatedImage(stem, image, (Grounding(prompt, _CATEGORY, mask=mask,
                                                     reference_size=size),))
