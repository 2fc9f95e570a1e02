"""Benchmark readers (each from a fixture written as the official files are), the SIIM RLE, the
scoring loop with perfect and uniform heatmaps, and robustness to bad rows and missing files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from lesionloc_runtime.boxes import Box
from lesionloc_runtime.errors import ConfigError, DataError
from lesionloc_runtime.evaluation import evaluate, open_dataset
from lesionloc_runtime.evaluation.prompts import load_prompts
from lesionloc_runtime.evaluation.records import Grounding
from lesionloc_runtime.evaluation.resample import resize_mask
from lesionloc_runtime.evaluation.rle import decode_rle, encode_rle, parse_rle
from lesionloc_runtime.evaluation.runner import ground_truth
from lesionloc_runtime.imageio import Radiograph
from lesionloc_runtime.metrics import boxes_to_mask

H, W = 96, 128  # non-square, so a transposed mask or box cannot pass

# -- fixture writers: the official layouts, tiny generated images ---------------------------


def radiograph(seed: int, height: int = H, width: int = W) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = 60 + 80 * np.sin(xx / width * np.pi) + rng.normal(0, 8, (height, width))
    return np.clip(base, 0, 255).astype(np.uint8)


def write_dicom(path: Path, pixels: np.ndarray, sop_uid: str | None = None) -> str:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    uid = sop_uid or generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # Computed Radiography
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = uid
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "CR"
    ds.PatientID = "synthetic"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return uid


def write_png(path: Path, pixels: np.ndarray, ext: str = ".png") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(ext, pixels)
    assert ok
    path.write_bytes(data.tobytes())


def write_lines(path: Path, lines: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def make_phantoms(root: Path) -> dict[tuple[str, str], list]:
    """manifest.jsonl as docs/phantoms.md specifies; returns (study, text) -> boxes."""
    write_dicom(root / "images/p000001.dcm", radiograph(1))
    write_png(root / "images/p000002.png", radiograph(2))
    write_png(root / "images/p000004.png", radiograph(4))

    def finding(text: str, kind: str, boxes: list) -> dict:
        return {"text": text, "section": "findings", "kind": "finding", "finding": kind,
                "side": "right", "zone": "upper", "boxes": boxes}

    records = [
        {"study_id": "p000001", "split": "test", "image": "images/p000001.dcm",
         "report": "reports/p000001.txt", "width": W, "height": H, "pixel_spacing_mm": 0.7,
         "sentences": [
             finding("A 7 mm nodule projects over the right upper lobe.", "nodule",
                     [[20, 10, 12, 12]]),
             {"text": "No pneumothorax.", "section": "findings", "kind": "negated",
              "boxes": []},
             {"text": "The heart size is normal.", "section": "findings", "kind": "normal",
              "boxes": []},
             finding("Bilateral pleural effusions.", "pleural effusion",
                     [[10, 70, 30, 20], [90, 70, 30, 20]]),
         ]},
        {"study_id": "p000002", "split": "test", "image": "images/p000002.dcm",
         "image_png": "images/p000002.png", "width": W, "height": H,
         "sentences": [finding("Right lower lobe consolidation.", "consolidation",
                               [[15, 50, 40, 30]])]},
        {"study_id": "p000003", "split": "test", "image": "images/p000003.dcm", "width": W,
         "height": H, "sentences": [finding("Left upper lobe mass.", "mass",
                                             [[80, 10, 30, 30]])]},
        {"study_id": "p000004", "split": "train", "image": "images/p000004.png", "width": W,
         "height": H, "sentences": [finding("Left apical pneumothorax.", "pneumothorax",
                                             [[70, 5, 40, 15]])]},
        {"study_id": "p000005", "split": "test", "image": "images/p000001.dcm", "width": W,
         "height": H, "sentences": [finding("A nodule.", "nodule", [[1, 2, 3]])]},
    ]
    lines = [json.dumps(r) for r in records]
    lines.insert(3, '{"study_id": "p000006", "split": "test", "image": ')  # truncated line
    write_lines(root / "manifest.jsonl", lines)
    return {
        ("p000001", "A 7 mm nodule projects over the right upper lobe."): [[20, 10, 12, 12]],
        ("p000001", "Bilateral pleural effusions."): [[10, 70, 30, 20], [90, 70, 30, 20]],
        ("p000002", "Right lower lobe consolidation."): [[15, 50, 40, 30]],
    }


MSCXR_HEADER = "dicom_id,category_name,label_text,path,x,y,w,h,image_width,image_height"
MSCXR_A = "0a1b2c3d-11111111-22222222-33333333-44444444"
MSCXR_B = "5e6f7a8b-55555555-66666666-77777777-88888888"
MSCXR_C = "9c0d1e2f-99999999-aaaaaaaa-bbbbbbbb-cccccccc"


def mscxr_path(dicom_id: str, subject: str, study: str) -> str:
    return f"files/p{subject[:2]}/p{subject}/s{study}/{dicom_id}.jpg"


def make_ms_cxr(root: Path, image_scale: float = 1.0) -> dict[tuple[str, str], list]:
    """MS_CXR_Local_Alignment_v1.0.0.csv (one row per box) and MIMIC-CXR-JPG files/ tree."""
    path_a = mscxr_path(MSCXR_A, "10000032", "50414267")
    path_b = mscxr_path(MSCXR_B, "10000764", "57375967")
    path_c = mscxr_path(MSCXR_C, "10001217", "58913004")
    size = (round(W * image_scale), round(H * image_scale))
    write_png(root / path_a, cv2.resize(radiograph(11), size), ".jpg")
    write_png(root / path_b, cv2.resize(radiograph(12), size), ".jpg")
    rows = [
        MSCXR_HEADER,
        f'{MSCXR_A},Pleural Effusion,Bilateral pleural effusions,{path_a},8,60,30,25,{W},{H}',
        f'{MSCXR_A},Consolidation,"Left lower lobe consolidation, likely pneumonia",{path_a},'
        f'80,50,30,30,{W},{H}',
        f'{MSCXR_B},Pneumothorax,small right apical pneumothorax,{path_b},10,4,30,14,{W},{H}',
        f'{MSCXR_A},Pleural Effusion,Bilateral pleural effusions,{path_a},88,60,30,25,{W},{H}',
        f'{MSCXR_C},Edema,mild pulmonary edema,{path_c},20,20,80,50,{W},{H}',
        f'{MSCXR_B},Pneumothorax,apical pneumothorax,{path_b},abc,4,30,14,{W},{H}',
    ]
    write_lines(root / "MS_CXR_Local_Alignment_v1.0.0.csv", rows)
    return {
        (MSCXR_A, "Bilateral pleural effusions"): [[8, 60, 30, 25], [88, 60, 30, 25]],
        (MSCXR_A, "Left lower lobe consolidation, likely pneumonia"): [[80, 50, 30, 30]],
        (MSCXR_B, "small right apical pneumothorax"): [[10, 4, 30, 14]],
    }


def make_ms_cxr_json(root: Path) -> None:
    """The COCO-style MS_CXR_Local_Alignment_v1.0.0.json with the same content as the CSV."""
    make_ms_cxr(root)
    (root / "MS_CXR_Local_Alignment_v1.0.0.csv").unlink()
    images = [
        {"id": 1, "file_name": f"{MSCXR_A}.jpg", "path": mscxr_path(MSCXR_A, "10000032",
                                                                  "50414267"),
         "width": W, "height": H},
        {"id": 2, "file_name": f"{MSCXR_B}.jpg", "path": mscxr_path(MSCXR_B, "10000764",
                                                                  "57375967"),
         "width": W, "height": H},
    ]
    categories = [{"id": 1, "name": "Pleural Effusion"}, {"id": 2, "name": "Consolidation"},
                  {"id": 3, "name": "Pneumothorax"}]
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [8, 60, 30, 25], "area": 750,
         "iscrowd": 0, "label_text": "Bilateral pleural effusions"},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [80, 50, 30, 30], "area": 900,
         "iscrowd": 0, "label_text": "Left lower lobe consolidation, likely pneumonia"},
        {"id": 3, "image_id": 2, "category_id": 3, "bbox": [10, 4, 30, 14], "area": 420,
         "iscrowd": 0, "label_text": "small right apical pneumothorax"},
        {"id": 4, "image_id": 1, "category_id": 1, "bbox": [88, 60, 30, 25], "area": 750,
         "iscrowd": 0, "label_text": "Bilateral pleural effusions"},
        {"id": 5, "image_id": 2, "category_id": 3, "bbox": [1, 2], "label_text": "bad"},
    ]
    (root / "MS_CXR_Local_Alignment_v1.0.0.json").write_text(json.dumps(
        {"info": {}, "licenses": [], "images": images, "annotations": annotations,
         "categories": categories}))


RSNA_P1 = "0004cfab-14fd-4e49-80ba-63a80b6bddd6"
RSNA_P2 = "00313ee0-9eaa-42f4-b0ab-c148ed3241cd"
RSNA_P3 = "00322d4d-1c29-4943-afc9-b6754be640eb"
RSNA_P4 = "00436515-870c-4b36-a041-de91049b9ab4"
RSNA_P5 = "00569f44-917d-4c86-a842-81832af98c30"


def make_rsna(root: Path) -> dict[tuple[str, str], list]:
    """stage_2_train_labels.csv and stage_2_train_images/<patientId>.dcm."""
    rows = [
        "patientId,x,y,width,height,Target",
        f"{RSNA_P2},,,,,0",
        f"{RSNA_P1},10,20,30,40,1",
        f"{RSNA_P1},80.0,30.0,25.0,35.0,1",
        f"{RSNA_P3},20,20,20,20,1",
        f"{RSNA_P4},,,,,1",
        f"{RSNA_P5},50,10,30,50,1",
    ]
    write_lines(root / "stage_2_train_labels.csv", rows)
    for i, patient in enumerate((RSNA_P1, RSNA_P2, RSNA_P5)):
        write_dicom(root / "stage_2_train_images" / f"{patient}.dcm", radiograph(20 + i))
    return {(RSNA_P1, "Findings suggesting pneumonia."): [[10, 20, 30, 40], [80, 30, 25, 35]],
            (RSNA_P5, "Findings suggesting pneumonia."): [[50, 10, 30, 50]]}


SIIM_IDS = ("1.2.276.0.7230010.3.1.4.8323329.5597.1517875188.959090",
            "1.2.276.0.7230010.3.1.4.8323329.12515.1517875239.501137",
            "1.2.276.0.7230010.3.1.4.8323329.4904.1517875185.355709",
            "1.2.276.0.7230010.3.1.4.8323329.32579.1517875161.299312")


def siim_masks() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    apex = np.zeros((H, W), bool)
    apex[5:25, 90:120] = True  # a pneumothorax along the patient's left apex (image right)
    apex[25:30, 110:120] = True
    lateral = np.zeros((H, W), bool)
    lateral[30:70, 3:12] = True
    second = np.zeros((H, W), bool)
    second[40:60, 60:75] = True
    return apex, lateral, second


def make_siim(root: Path) -> dict[tuple[str, str], np.ndarray]:
    """train-rle.csv ("ImageId, EncodedPixels", relative column-major RLE) and DICOMs named by
    their SOP Instance UID under dicom-images-train/<study>/<series>/."""
    apex, lateral, second = siim_masks()
    rows = [
        "ImageId, EncodedPixels",
        f"{SIIM_IDS[0]}, {encode_rle(apex)}",
        f"{SIIM_IDS[1]}, -1",
        f"{SIIM_IDS[2]}, {encode_rle(lateral)}",
        f"{SIIM_IDS[2]}, {encode_rle(second)}",
        f"{SIIM_IDS[3]}, {encode_rle(apex)}",
        f"{SIIM_IDS[0]}, 12 5 7",
    ]
    write_lines(root / "train-rle.csv", rows)
    for i, uid in enumerate(SIIM_IDS[:3]):
        folder = root / "dicom-images-train" / f"1.2.276.0.7230010.3.1.2.{i}" / f"1.2.276.0.{i}"
        write_dicom(folder / f"{uid}.dcm", radiograph(30 + i), sop_uid=uid)
    return {(SIIM_IDS[0], "There is a pneumothorax."): apex,
            (SIIM_IDS[2], "There is a pneumothorax."): lateral | second}


COVID_NAMES = ("COVID-19-AR-16406491_XR_CHEST_AP_PORTABLE_1",
               "COVID-19-AR-16406502_XR_CHEST_AP_PORTABLE_2",
               "COVID-19-AR-16406513_XR_CHEST_AP_PORTABLE_1",
               "COVID-19-AR-16406521_XR_CHEST_AP_PORTABLE_3",
               "COVID-19-AR-16406530_XR_CHEST_AP_PORTABLE_1")


def make_covid_rural(root: Path, images: str = "jpgs", masks: str = "pngs_masks"
                     ) -> dict[tuple[str, str], np.ndarray]:
    """covid_rural_annot/: jpgs/<name>.jpg (+ its .json) and pngs_masks/<name>.png (0/1)."""
    one = np.zeros((H, W), np.uint8)
    one[30:70, 10:45] = 1
    two = np.zeros((H, W), np.uint8)
    two[20:50, 80:110] = 1
    two[60:80, 85:100] = 1
    for i, name in enumerate(COVID_NAMES[:4]):
        # the TCIA images were saved as colour JPEGs
        write_png(root / images / f"{name}.jpg",
                  cv2.cvtColor(radiograph(40 + i), cv2.COLOR_GRAY2BGR), ".jpg")
        (root / images / f"{name}.json").write_text("{}")
    write_png(root / masks / f"{COVID_NAMES[0]}.png", one)
    write_png(root / masks / f"{COVID_NAMES[1]}.png", two)
    write_png(root / masks / f"{COVID_NAMES[2]}.png", np.zeros((H, W), np.uint8))  # negative
    write_png(root / masks / f"{COVID_NAMES[4]}.png", one)  # its image is missing
    prompt = "Findings suggesting COVID-19 pneumonia."
    return {(COVID_NAMES[0], prompt): one.astype(bool), (COVID_NAMES[1], prompt): two > 0}


MAKERS = {
    "phantoms": make_phantoms,
    "ms-cxr": make_ms_cxr,
    "rsna-pneumonia": make_rsna,
    "siim-pneumothorax": make_siim,
    "covid-rural": make_covid_rural,
}


def truth_masks(truth: dict) -> dict[tuple[str, str], np.ndarray]:
    """Ground truth as masks on the fixture grid, computed here, not by the code under test."""
    out = {}
    for key, value in truth.items():
        out[key] = value if isinstance(value, np.ndarray) else boxes_to_mask(value, H, W)
    return out


# -- fake heatmap providers ----------------------------------------------------------------


def image_key(image: Radiograph) -> str:
    return Path(image.source).stem


class OracleProvider:
    """A perfect model: a Gaussian centred on each box (a distance map inside each mask)."""

    def __init__(self, truth: dict) -> None:
        self.truth = truth
        self.calls: list[tuple[str, list[str]]] = []

    def heatmaps(self, image: Radiograph, texts: Sequence[str]) -> np.ndarray:
        self.calls.append((image_key(image), list(texts)))
        out = np.zeros((len(texts), image.height, image.width), np.float32)
        sy, sx = image.height / H, image.width / W
        yy, xx = np.mgrid[0:image.height, 0:image.width].astype(np.float32)
        for i, text in enumerate(texts):
            value = self.truth.get((image_key(image), text))
            if value is None:
                continue
            if isinstance(value, np.ndarray):
                mask = cv2.resize(value.astype(np.uint8), (image.width, image.height),
                                  interpolation=cv2.INTER_NEAREST)
                out[i] = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
            else:
                for x, y, w, h in value:
                    cx, cy = (x + w / 2) * sx, (y + h / 2) * sy
                    out[i] += np.exp(-(((xx + 0.5 - cx) / (w * sx / 4)) ** 2
                                       + ((yy + 0.5 - cy) / (h * sy / 4)) ** 2) / 2)
        return out


class UniformProvider:
    """A model that localizes nothing: every pixel the same."""

    def heatmaps(self, image: Radiograph, texts: Sequence[str]) -> np.ndarray:
        return np.full((len(texts), image.height, image.width), 0.3, np.float32)


# -- SIIM run-length encoding --------------------------------------------------------------


def test_rle_decoder_matches_a_hand_made_mask() -> None:
    # Column-major pixels of this 3x4 mask: col0 000, col1 110, col2 000, col3 011 -> runs at
    # 3 (length 2) and 10 (length 2); the second offset counts from the end of the first run.
    mask = np.array([[0, 1, 0, 0],
                     [0, 1, 0, 1],
                     [0, 0, 0, 1]], dtype=bool)
    assert np.array_equal(decode_rle("3 2 5 2", height=3, width=4), mask)
    assert encode_rle(mask) == "3 2 5 2"


def _official_rle2mask(rle: str, width: int, height: int) -> np.ndarray:
    # the challenge's mask_functions.rle2mask, as its kernels call it: rle2mask(...).T
    mask = np.zeros(width * height)
    array = np.asarray([int(x) for x in rle.split()])
    position = 0
    for start, length in zip(array[0::2], array[1::2], strict=True):
        position += start
        mask[position:position + length] = 255
        position += length
    return mask.reshape(width, height).T > 0


def test_rle_round_trip_and_agrees_with_the_official_decoder() -> None:
    rng = np.random.default_rng(0)
    for shape in ((H, W), (W, H), (32, 32)):
        mask = cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), 3) > 0.5
        mask[-1, -1] = True  # a run that ends on the very last pixel
        encoded = encode_rle(mask)
        assert np.array_equal(decode_rle(encoded, *shape), mask)
        if shape[0] == shape[1]:  # the official decoder is only defined for square images
            assert np.array_equal(_official_rle2mask(encoded, shape[1], shape[0]), mask)
    assert encode_rle(np.zeros((4, 4), bool)) == "-1"
    assert not decode_rle(" -1", 4, 4).any()


@pytest.mark.parametrize("encoded", ["12 5 7", "1 x", "", "3 0", "-2 4"])
def test_rle_rejects_malformed_strings(encoded: str) -> None:
    with pytest.raises(ValueError):
        parse_rle(encoded)


def test_rle_that_overruns_the_image_is_an_error() -> None:
    with pytest.raises(ValueError, match="runs past"):
        decode_rle("10 10", 4, 4)


# -- readers -------------------------------------------------------------------------------


def _read_all(name: str, root: Path, **kwargs: object) -> tuple[list, object]:
    data = open_dataset(name, root, **kwargs)
    return list(data.images), data


def test_phantoms_reader_takes_finding_sentences_of_the_split(tmp_path: Path) -> None:
    make_phantoms(tmp_path)
    images, data = _read_all("phantoms", tmp_path)
    assert [i.image_id for i in images] == ["p000001", "p000002"]
    first = images[0]
    assert [(g.prompt, g.category, len(g.boxes)) for g in first.groundings] == [
        ("A 7 mm nodule projects over the right upper lobe.", "nodule", 1),
        ("Bilateral pleural effusions.", "pleural effusion", 2),
    ]
    assert images[1].path.name == "p000002.png"  # the PNG stands in for a missing DICOM
    assert data.log.missing_images == ["images/p000003.dcm"]
    lines = sorted((i.line, i.message) for i in data.log.issues if i.kind == "malformed")
    assert [line for line, _ in lines] == [4, 6]
    assert "not valid JSON" in lines[0][1] and "4 numbers" in lines[1][1]
    train, _ = _read_all("phantoms", tmp_path, split="train")
    assert [i.image_id for i in train] == ["p000004"]


def test_phantoms_unknown_split_is_a_data_error(tmp_path: Path) -> None:
    make_phantoms(tmp_path)
    with pytest.raises(DataError, match="splits present"):
        open_dataset("phantoms", tmp_path, split="validation")


def test_ms_cxr_merges_boxes_of_one_image_and_phrase(tmp_path: Path) -> None:
    make_ms_cxr(tmp_path)
    images, data = _read_all("ms-cxr", tmp_path)
    assert [i.image_id for i in images] == [MSCXR_A, MSCXR_B]
    effusion, consolidation = images[0].groundings
    assert (effusion.category, effusion.prompt) == ("Pleural Effusion",
                                                    "Bilateral pleural effusions")
    assert effusion.boxes == (Box(8, 60, 30, 25), Box(88, 60, 30, 25))
    assert effusion.reference_size == (W, H)
    assert consolidation.prompt == "Left lower lobe consolidation, likely pneumonia"
    assert data.log.missing_images == [mscxr_path(MSCXR_C, "10001217", "58913004")]
    [bad] = data.log.issues
    assert (bad.kind, bad.line) == ("malformed", 7) and "not numeric" in bad.message


def test_ms_cxr_coco_json_gives_the_same_samples(tmp_path: Path) -> None:
    make_ms_cxr_json(tmp_path)
    images, data = _read_all("ms-cxr", tmp_path)
    assert data.annotation_file.suffix == ".json"
    assert [(g.category, g.prompt, g.boxes) for g in images[0].groundings] == [
        ("Pleural Effusion", "Bilateral pleural effusions",
         (Box(8, 60, 30, 25), Box(88, 60, 30, 25))),
        ("Consolidation", "Left lower lobe consolidation, likely pneumonia",
         (Box(80, 50, 30, 30),)),
    ]
    assert data.log.malformed_rows == 1 and "annotation #4" in data.log.issues[0].message


def test_ms_cxr_class_prompt_replaces_the_phrases_of_its_category(tmp_path: Path) -> None:
    make_ms_cxr(tmp_path)
    images, _ = _read_all("ms-cxr", tmp_path,
                          prompts={"pleural effusion": "Findings suggesting pleural effusion."})
    prompts = [g.prompt for g in images[0].groundings]
    assert prompts == ["Left lower lobe consolidation, likely pneumonia",
                       "Findings suggesting pleural effusion."]


def test_ms_cxr_split_name_needs_a_split_column(tmp_path: Path) -> None:
    make_ms_cxr(tmp_path)
    with pytest.raises(ConfigError, match="no split column"):
        open_dataset("ms-cxr", tmp_path, split="test")
    ids = tmp_path / "ids.txt"
    ids.write_text(f"dicom_id\n{MSCXR_B}\n")
    images, _ = _read_all("ms-cxr", tmp_path, split=str(ids))
    assert [i.image_id for i in images] == [MSCXR_B]


def test_rsna_reader_keeps_positive_patients_with_all_their_boxes(tmp_path: Path) -> None:
    make_rsna(tmp_path)
    images, data = _read_all("rsna-pneumonia", tmp_path)
    assert [i.image_id for i in images] == [RSNA_P1, RSNA_P5]
    [grounding] = images[0].groundings
    assert grounding.prompt == "Findings suggesting pneumonia."
    assert grounding.boxes == (Box(10, 20, 30, 40), Box(80, 30, 25, 35))
    assert data.log.missing_images == [f"{RSNA_P3}.dcm"]
    assert data.log.negative_images == 1
    [bad] = data.log.issues
    assert (bad.line, bad.kind) == (6, "malformed") and "Target 1" in bad.message


def test_siim_reader_finds_dicoms_by_image_id_and_merges_regions(tmp_path: Path) -> None:
    make_siim(tmp_path)
    images, data = _read_all("siim-pneumothorax", tmp_path)
    assert [i.image_id for i in images] == [SIIM_IDS[0], SIIM_IDS[2]]
    assert images[0].path.parent.parent.parent.name == "dicom-images-train"
    assert len(images[1].groundings[0].rle) == 2
    assert data.log.missing_images == [f"{SIIM_IDS[3]}.dcm"]
    [bad] = data.log.issues
    assert bad.line == 7 and "pairs" in bad.message


@pytest.mark.parametrize("layout", [("jpgs", "pngs_masks", ""),
                                    ("jpgs", "pngs_masks", "covid_rural_annot"),
                                    ("images", "masks", "")])
def test_covid_rural_reader_pairs_images_and_masks(tmp_path: Path, layout: tuple) -> None:
    images_dir, masks_dir, parent = layout
    make_covid_rural(tmp_path / parent, images_dir, masks_dir)
    images, data = _read_all("covid-rural", tmp_path)
    assert [i.image_id for i in images] == list(COVID_NAMES[:2])
    assert images[0].groundings[0].mask.sum() == 40 * 35
    assert data.log.negative_images == 1
    assert [Path(p).name for p in data.log.missing_images] == [f"{COVID_NAMES[4]}.jpg"]
    assert [i.kind for i in data.log.issues] == ["skipped"]  # an image without a mask


@pytest.mark.parametrize("name, expected", [
    ("phantoms", "manifest.jsonl"),
    ("ms-cxr", "MS_CXR_Local_Alignment"),
    ("rsna-pneumonia", "stage_2_train_labels.csv"),
    ("siim-pneumothorax", "train-rle.csv"),
    ("covid-rural", "pngs_masks"),
])
def test_a_root_without_the_expected_files_is_a_one_line_data_error(
    tmp_path: Path, name: str, expected: str
) -> None:
    with pytest.raises(DataError, match=expected) as info:
        open_dataset(name, tmp_path)
    assert "\n" not in str(info.value)


def test_a_csv_without_the_official_columns_is_a_data_error(tmp_path: Path) -> None:
    write_lines(tmp_path / "stage_2_train_labels.csv", ["patientId,Target", "a,1"])
    (tmp_path / "stage_2_train_images").mkdir()
    with pytest.raises(DataError, match="missing columns x, y, width, height"):
        open_dataset("rsna-pneumonia", tmp_path)


def test_datasets_without_official_splits_refuse_a_split_name(tmp_path: Path) -> None:
    make_rsna(tmp_path)
    with pytest.raises(ConfigError, match="define no split"):
        open_dataset("rsna-pneumonia", tmp_path, split="test")


# -- scoring -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MAKERS))
def test_a_perfect_heatmap_scores_pointing_game_one_and_high_cnr(
    tmp_path: Path, name: str
) -> None:
    truth = MAKERS[name](tmp_path)
    data = open_dataset(name, tmp_path)
    provider = OracleProvider(truth)
    run = evaluate(data, provider, progress=False)
    assert len(run.samples) == len(truth)
    assert run.n_images == len({image for image, _ in truth})
    assert len(provider.calls) == run.n_images  # one provider call per image, all its prompts
    for sample in run.samples:
        assert sample.scores.pointing_game == 1.0
        assert sample.scores.cnr > 1.0
        assert sample.scores.auroc > 0.9
        assert set(sample.conventions) == {"lesionloc", "afloc", "hi-ml"}  # on every data set
        assert sample.conventions["lesionloc"].cnr == sample.scores.cnr
        assert sample.conventions["afloc"].cnr > 1.0
        assert sample.conventions["hi-ml"].cnr > 1.0


def test_images_are_read_on_the_provider_threads(tmp_path: Path, monkeypatch) -> None:
    """A Localizer's `threads` reach the reader (JPEG 2000 decodes on them); a provider
    without any reads on one thread."""
    from lesionloc_runtime.evaluation import runner

    seen: list[int] = []
    real = runner.read_image
    monkeypatch.setattr(runner, "read_image",
                        lambda path, threads=1: seen.append(threads) or real(path, threads=threads))
    truth = MAKERS["rsna-pneumonia"](tmp_path)
    threaded = UniformProvider()
    threaded.threads = 3  # type: ignore[attr-defined]
    evaluate(open_dataset("rsna-pneumonia", tmp_path), threaded, progress=False)
    images = len({image for image, _ in truth})
    assert seen == [3] * images
    evaluate(open_dataset("rsna-pneumonia", tmp_path), UniformProvider(), progress=False)
    assert seen == [3] * images + [1] * images
    # a provider that reads for itself (a Localizer: Localizer.read_image) is asked to
    reading = UniformProvider()
    asked: list[str] = []
    reading.read_image = lambda path: asked.append(Path(path).name) or real(path)  # type: ignore[attr-defined]
    evaluate(open_dataset("rsna-pneumonia", tmp_path), reading, progress=False)
    assert len(asked) == images and seen == [3] * images + [1] * images


@pytest.mark.parametrize("name", list(MAKERS))
def test_a_uniform_heatmap_scores_chance(tmp_path: Path, name: str) -> None:
    truth = truth_masks(MAKERS[name](tmp_path))
    run = evaluate(open_dataset(name, tmp_path), UniformProvider(), progress=False)
    assert len(run.samples) == len(truth)
    for sample in run.samples:
        fraction = truth[(sample.image_id, sample.prompt)].mean()
        assert sample.scores.pointing_game == pytest.approx(fraction)
        assert sample.scores.auroc == pytest.approx(0.5)
        assert sample.scores.cnr == 0.0 and sample.scores.iou == 0.0
        afloc = sample.conventions["afloc"]  # a constant map predicts nothing: no IoU
        assert afloc.cnr == 0.0 and all(np.isnan(afloc.ious))
        himl = sample.conventions["hi-ml"]  # raw 0.3: every pixel above 0.1 and 0.2 only
        assert himl.cnr == 0.0
        assert himl.ious == pytest.approx((fraction, fraction, 0.0, 0.0, 0.0))


def test_limit_stops_after_n_images(tmp_path: Path) -> None:
    make_rsna(tmp_path)
    provider = OracleProvider({})
    run = evaluate(open_dataset("rsna-pneumonia", tmp_path), provider, limit=1, progress=False)
    assert run.n_images == 1 and len(provider.calls) == 1


def test_an_unreadable_image_is_reported_and_skipped(tmp_path: Path) -> None:
    truth = make_rsna(tmp_path)
    (tmp_path / "stage_2_train_images" / f"{RSNA_P1}.dcm").write_bytes(b"not a dicom at all")
    run = evaluate(open_dataset("rsna-pneumonia", tmp_path), OracleProvider(truth),
                   progress=False)
    assert run.n_images == 1 and run.log.unreadable_images == 1
    assert any(i.kind == "unreadable" and RSNA_P1 in i.source for i in run.log.issues)


def test_scoring_on_a_reduced_grid_keeps_a_perfect_heatmap_perfect(tmp_path: Path) -> None:
    truth = make_phantoms(tmp_path)
    run = evaluate(open_dataset("phantoms", tmp_path), OracleProvider(truth), score_size=48,
                   progress=False)
    assert run.n_downscaled == run.n_images == 2
    assert all(s.scores.pointing_game == 1.0 for s in run.samples)


def test_boxes_follow_an_image_stored_at_another_size(tmp_path: Path) -> None:
    truth = make_ms_cxr(tmp_path, image_scale=0.5)
    run = evaluate(open_dataset("ms-cxr", tmp_path), OracleProvider(truth), progress=False)
    assert len(run.samples) == 3
    assert all(s.scores.pointing_game == 1.0 for s in run.samples)
    assert sum(i.kind == "rescaled" for i in run.log.issues) == 2


def test_ground_truth_rescales_boxes_and_masks() -> None:
    boxes = Grounding("p", "c", boxes=(Box(10, 20, 30, 40),), reference_size=(200, 100))
    mask, annotated = ground_truth(boxes, 50, 100)
    assert annotated == (200, 100)
    assert np.array_equal(mask, boxes_to_mask([(5, 10, 15, 20)], 50, 100))
    full = np.zeros((20, 40), bool)
    full[4:8, 10:20] = True
    mask, annotated = ground_truth(Grounding("p", "c", mask=full), 10, 20)
    assert annotated == (40, 20) and mask.sum() == 2 * 5
    assert ground_truth(Grounding("p", "c", mask=full), 20, 40)[1] is None


def test_resize_mask_never_loses_a_tiny_lesion() -> None:
    mask = np.zeros((100, 100), bool)
    mask[50, 50] = True
    assert resize_mask(mask, (10, 10)).sum() == 1


# -- the command line ----------------------------------------------------------------------

FAKE_MODEL = {"name": "fake-bundle", "card_sha256": "ab" * 32, "quantization": "int8",
              "demo": True, "notice": "DEMO MODEL for tests."}


@pytest.fixture
def fake_provider(monkeypatch: pytest.MonkeyPatch):
    """Swap the CLI's provider factory; the test sets `.provider` before invoking."""
    from lesionloc_runtime.evaluation import cli

    class Factory:
        provider: object = UniformProvider()
        args: tuple = ()

        def __call__(self, model, providers, threads):
            self.args = (model, providers, threads)
            return self.provider, dict(FAKE_MODEL)

    factory = Factory()
    monkeypatch.setattr(cli, "make_provider", factory)
    return factory


def invoke(*args: str):
    from click.testing import CliRunner

    from lesionloc_runtime.evaluation.cli import command

    return CliRunner().invoke(command, [*args, "--no-progress"])


def test_cli_prints_the_table_and_writes_json_and_markdown(tmp_path: Path, fake_provider) -> None:
    root, out = tmp_path / "rsna", tmp_path / "out"
    fake_provider.provider = OracleProvider(make_rsna(root))
    result = invoke("--dataset", "rsna-pneumonia", "--root", str(root), "--out", str(out),
                    "--providers", "cuda,cpu", "--threads", "2")
    assert result.exit_code == 0, result.output
    assert fake_provider.args == (None, ("cuda", "cpu"), 2)
    assert "pneumonia" in result.stdout and "PG" in result.stdout and "fake-bundle" in result.stdout
    report = json.loads((out / "rsna-pneumonia.json").read_text())
    assert report["counts"] | {"images": 2, "samples": 2, "missing_images": 1,
                               "malformed_rows": 1, "negative_images": 1} == report["counts"]
    assert report["prompts"] == {"pneumonia": ["Findings suggesting pneumonia."]}
    assert report["threshold"] == 0.5 and report["scoring"]["max_side"] == 1024
    assert report["model"]["quantization"] == "int8" and report["model"]["demo"] is True
    assert report["micro"]["metrics"]["pointing_game"] == 1.0
    assert report["schema"] == "lesionloc-evaluation/2"
    assert [c["name"] for c in report["conventions"]] == ["lesionloc", "afloc", "hi-ml"]
    metrics = report["micro"]["metrics"]
    assert {"cnr[lesionloc]", "cnr[afloc]", "cnr[hi-ml]", "miou[lesionloc]", "miou[afloc]",
            "miou[hi-ml]"} <= set(metrics)
    assert "cnr" not in metrics and "miou" not in metrics  # never a CNR without its convention
    assert len(report["micro"]["conventions"]["afloc"]["iou_by_threshold"]) == 5
    assert len(report["micro"]["conventions"]["hi-ml"]["iou_by_threshold"]) == 5
    assert "CNR[afloc]" in result.stdout and "mIoU[lesionloc]" in result.stdout
    assert "CNR[hi-ml]" in result.stdout and "mIoU[hi-ml]" in result.stdout
    assert report["missing_images"] == [f"{RSNA_P3}.dcm"]
    assert report["issues"][0]["line"] == 6
    markdown = (out / "rsna-pneumonia.md").read_text()
    assert "| pneumonia | 2 | 2 | 1.000 |" in markdown and "## Missing images" in markdown
    samples = (out / "rsna-pneumonia-samples.csv").read_text().splitlines()
    assert samples[0].startswith("image_id,category,prompt,pointing_game") and len(samples) == 3
    assert samples[0].endswith("cnr[lesionloc],cnr[afloc],cnr[hi-ml],miou[lesionloc],"
                               "miou[afloc],miou[hi-ml]")
    assert "`afloc`: on AFLoc's 224 px letterbox" in markdown and "| CNR[afloc] |" in markdown
    assert "`hi-ml`: on the image's own pixels" in markdown and "| mIoU[hi-ml] |" in markdown


def test_cli_reports_macro_over_categories_and_micro_over_samples(
    tmp_path: Path, fake_provider
) -> None:
    truth = truth_masks(make_ms_cxr(tmp_path))
    result = invoke("--dataset", "ms-cxr", "--root", str(tmp_path), "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "ms-cxr.json").read_text())
    by_category: dict[str, list[float]] = {}
    for (_image, prompt), mask in truth.items():
        category = {"Bilateral pleural effusions": "Pleural Effusion",
                    "small right apical pneumothorax": "Pneumothorax"}.get(prompt,
                                                                            "Consolidation")
        by_category.setdefault(category, []).append(mask.mean())  # uniform PG = area
    macro = np.mean([np.mean(v) for v in by_category.values()])
    micro = np.mean([m.mean() for m in truth.values()])
    assert report["macro"]["metrics"]["pointing_game"] == pytest.approx(macro, abs=1e-6)
    assert report["micro"]["metrics"]["pointing_game"] == pytest.approx(micro, abs=1e-6)
    assert [c["name"] for c in report["categories"]] == sorted(by_category)
    assert "macro (mean of categories)" in result.stdout


def test_cli_limit_and_prompts_file(tmp_path: Path, fake_provider) -> None:
    make_rsna(tmp_path)
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"Pneumonia": "Patchy airspace opacity."}))
    fake_provider.provider = OracleProvider({})
    result = invoke("--dataset", "rsna-pneumonia", "--root", str(tmp_path), "--limit", "1",
                    "--prompts", str(prompts), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert fake_provider.provider.calls == [(RSNA_P1, ["Patchy airspace opacity."])]
    report = json.loads((tmp_path / "out" / "rsna-pneumonia.json").read_text())
    assert report["counts"]["images"] == 1
    assert report["prompts"] == {"pneumonia": ["Patchy airspace opacity."]}


@pytest.mark.parametrize("case, code, message", [
    ("no-root", 7, "no such directory"),
    ("empty-root", 7, "stage_2_train_labels.csv"),
    ("bad-prompts", 2, "not valid JSON"),
    ("nothing-scored", 7, "nothing was scored"),
])
def test_cli_user_errors_are_one_line_with_an_exit_code(
    tmp_path: Path, fake_provider, case: str, code: int, message: str
) -> None:
    args = ["--dataset", "rsna-pneumonia", "--root", str(tmp_path)]
    if case == "no-root":
        args[-1] = str(tmp_path / "absent")
    elif case == "bad-prompts":
        make_rsna(tmp_path)
        (tmp_path / "p.json").write_text("{oops")
        args += ["--prompts", str(tmp_path / "p.json")]
    elif case == "nothing-scored":
        make_rsna(tmp_path)
        for dicom in (tmp_path / "stage_2_train_images").iterdir():
            dicom.unlink()
    result = invoke(*args)
    assert result.exit_code == code
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert not isinstance(result.exception, LookupError)


def test_main_entry_point_exits_with_the_error_code(tmp_path: Path, capsys) -> None:
    from lesionloc_runtime.evaluation.cli import main

    with pytest.raises(SystemExit) as info:
        main(["--dataset", "covid-rural", "--root", str(tmp_path)])
    assert info.value.code == 7
    assert capsys.readouterr().err.startswith("error: ")


def test_the_evaluation_package_imports_without_torch() -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None; "
            "import lesionloc_runtime.evaluation.cli, lesionloc_runtime.evaluation")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- damaged annotation files
# Found by fuzzing the readers (30,000 mutated annotation files): each of these escaped as an
# exception other than a LesionlocError, hung, or lost rows before.

def _everything(name: str, root: Path, **kwargs: object):
    data = open_dataset(name, root, **kwargs)
    return data, [image.image_id for image in data.images]


def test_csv_cut_inside_a_utf8_character_ends(tmp_path) -> None:
    """The strict decoder raised at the end of the file on every read: an endless loop."""
    make_rsna(tmp_path)
    before = open_dataset("rsna-pneumonia", tmp_path).log.malformed_rows
    labels = tmp_path / "stage_2_train_labels.csv"
    rows = "".join(f"q{i},10,10,20,20,1\n" for i in range(600))  # past the first 8 KiB block
    labels.write_bytes(labels.read_bytes() + rows.encode() + b"\xc3")
    data, _ = _everything("rsna-pneumonia", tmp_path)
    assert data.log.malformed_rows == before + 1
    assert "bytes that are not UTF-8" in str(data.log.issues[-1])


def test_a_byte_that_is_not_utf8_costs_only_its_row(tmp_path) -> None:
    """It cost the rest of its 8 KiB block, with wrong line numbers."""
    (tmp_path / "stage_2_train_images").mkdir()
    good = lambda a, b: b"".join(b"p%04d,10,10,20,20,1\n" % i for i in range(a, b))  # noqa: E731
    (tmp_path / "stage_2_train_labels.csv").write_bytes(
        b"patientId,x,y,width,height,Target\n" + good(0, 1000) + b"q,10,10,20,\xe9,1\n"
        + good(1000, 2000))
    data = open_dataset("rsna-pneumonia", tmp_path)
    assert data.total == 2000 and data.log.malformed_rows == 1
    assert [str(issue) for issue in data.log.issues] == [
        "stage_2_train_labels.csv:1002: bytes that are not UTF-8"]


@pytest.mark.parametrize("value", ["inf", "1e400", "1e18", "1.9", "nan"])
def test_image_sizes_that_are_not_plausible_pixels_skip_the_row(tmp_path, value) -> None:
    make_ms_cxr(tmp_path)
    before = open_dataset("ms-cxr", tmp_path).log.malformed_rows
    labels = tmp_path / "MS_CXR_Local_Alignment_v1.0.0.csv"
    assert labels.read_text().count(",10,4,30,14,128,96") == 1
    labels.write_text(labels.read_text().replace(",10,4,30,14,128,96", f",10,4,30,14,{value},96"))
    data, _ = _everything("ms-cxr", tmp_path)
    assert data.log.malformed_rows == before + 1
    assert any(f"image size '{value}'" in str(issue) for issue in data.log.issues)


@pytest.mark.parametrize("bad", ['{"width": ' + "9" * 5000 + "}", "[" * 100_000])
def test_json_that_python_cannot_hold_is_one_malformed_line(tmp_path, bad) -> None:
    """A 5,000-digit number (ValueError) or very deep nesting (RecursionError)."""
    make_phantoms(tmp_path)
    before, before_ids = _everything("phantoms", tmp_path)
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(bad + "\n" + manifest.read_text())
    data, ids = _everything("phantoms", tmp_path)
    assert data.log.malformed_rows == before.log.malformed_rows + 1 and ids == before_ids
    assert "manifest.jsonl:1: not usable JSON" in str(data.log.issues[0])
    make_ms_cxr_json(tmp_path / "mscxr")
    (tmp_path / "mscxr" / "MS_CXR_Local_Alignment_v1.0.0.json").write_text(bad)
    with pytest.raises(DataError, match="not an MS-CXR COCO-style annotation file"):
        open_dataset("ms-cxr", tmp_path / "mscxr")
    prompts = tmp_path / "prompts.json"
    prompts.write_text(bad)
    with pytest.raises(ConfigError, match="not usable JSON"):
        load_prompts(prompts)


def test_names_over_the_system_limit_are_missing_images(tmp_path) -> None:
    """Path.is_file raises ENAMETOOLONG on Python 3.11 instead of answering False."""
    long = "A" * 300
    make_rsna(tmp_path / "rsna")
    labels = tmp_path / "rsna" / "stage_2_train_labels.csv"
    labels.write_text(labels.read_text() + f"{long},1,1,5,5,1\n")
    make_siim(tmp_path / "siim")
    siim = tmp_path / "siim" / "train-rle.csv"
    siim.write_text(siim.read_text() + f"{long}, 3 2\n")
    make_ms_cxr(tmp_path / "mscxr")
    mscxr = tmp_path / "mscxr" / "MS_CXR_Local_Alignment_v1.0.0.csv"
    mscxr.write_text(mscxr.read_text() + f"d,Edema,edema,{long}.jpg,1,1,5,5,128,96\n"
                     "e,Edema,edema,/,1,1,5,5,128,96\n")  # "/" has no name to swap a suffix on
    for name, root in (("rsna-pneumonia", "rsna"), ("siim-pneumothorax", "siim"),
                       ("ms-cxr", "mscxr")):
        data, ids = _everything(name, tmp_path / root)
        assert long not in ids and any(long in m for m in data.log.missing_images), name


def test_issues_are_cut_short(tmp_path) -> None:
    make_ms_cxr_json(tmp_path)
    labels = tmp_path / "MS_CXR_Local_Alignment_v1.0.0.json"
    doc = json.loads(labels.read_text())
    doc["annotations"][0]["image_id"] = "x" * 100_000  # names no image
    labels.write_text(json.dumps(doc))
    data, _ = _everything("ms-cxr", tmp_path)
    assert data.log.issues and max(len(issue.message) for issue in data.log.issues) <= 300


def test_header_names_are_quoted_printable(tmp_path) -> None:
    make_rsna(tmp_path)
    labels = tmp_path / "stage_2_train_labels.csv"
    body = labels.read_bytes().split(b"\n", 1)[1]
    labels.write_bytes(b"patientId,x,\x1b[31my,width,height,Tar\x00get\n" + body)
    with pytest.raises(DataError) as info:
        open_dataset("rsna-pneumonia", tmp_path)
    assert str(info.value).isprintable() and "?[31my" in str(info.value)


def test_split_file_with_a_field_over_the_csv_limit_is_a_config_error(tmp_path) -> None:
    make_rsna(tmp_path)
    ids = tmp_path / "ids.csv"
    ids.write_text('"' + "Z" * 200_000 + '"\n')
    with pytest.raises(ConfigError, match="not a readable id list"):
        open_dataset("rsna-pneumonia", tmp_path, split=str(ids))


def test_mask_declaring_a_huge_size_is_refused_before_decoding(tmp_path) -> None:
    import struct
    import zlib

    def chunk(tag: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + tag + body
                + struct.pack(">I", zlib.crc32(tag + body)))

    make_covid_rural(tmp_path)
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 50000, 50000, 8, 0, 0,
                                                              0, 0))
           + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))
    (tmp_path / "pngs_masks" / f"{COVID_NAMES[0]}.png").write_bytes(png)
    data, ids = _everything("covid-rural", tmp_path)
    assert COVID_NAMES[0] not in ids
    assert any("over the limit" in str(issue) for issue in data.log.issues)


def test_phantom_manifest_lines_end_at_newlines_only(tmp_path) -> None:
    """str.splitlines also split inside a JSON string at U+2028, which json.dumps(...,
    ensure_ascii=False) leaves raw: the study was lost as two malformed lines."""
    make_phantoms(tmp_path)
    before = open_dataset("phantoms", tmp_path).log.malformed_rows
    manifest = tmp_path / "manifest.jsonl"
    lines = manifest.read_text().split("\n")
    record = json.loads(lines[0])
    record["sentences"][0]["text"] = "A 7 mm nodule\u2028projects over the right upper lobe."
    lines[0] = json.dumps(record, ensure_ascii=False)
    manifest.write_text("\n".join(lines))
    data, ids = _everything("phantoms", tmp_path)
    assert record["study_id"] in ids and data.log.malformed_rows == before


def test_boxes_partly_outside_the_image_are_noted(tmp_path) -> None:
    """A phrase with one box inside and one outside was scored on the inside one without a
    word; the note came only when every box was outside."""
    make_phantoms(tmp_path)
    manifest = tmp_path / "manifest.jsonl"
    lines = manifest.read_text().split("\n")
    record = json.loads(lines[0])
    record["sentences"][0]["boxes"].append([-500, -500, 10, 10])
    lines[0] = json.dumps(record)
    manifest.write_text("\n".join(lines))
    run = evaluate(open_dataset("phantoms", tmp_path), UniformProvider(), progress=False)
    notes = [str(issue) for issue in run.log.issues if issue.kind == "outside"]
    assert notes == ["images/p000001.dcm: nodule: 1 of 2 boxes lie outside the image and were "
                     "not scored"]
    assert any(s.image_id == "p000001" and s.category == "nodule" for s in run.samples)


def test_a_phantom_study_listed_twice_is_scored_once(tmp_path) -> None:
    make_phantoms(tmp_path)
    manifest = tmp_path / "manifest.jsonl"
    first = manifest.read_text().split("\n")[0]
    manifest.write_text(manifest.read_text().rstrip("\n") + "\n" + first + "\n")
    data, ids = _everything("phantoms", tmp_path)
    assert ids.count("p000001") == 1
    assert "study_id 'p000001' is also on line 1; skipped" in str(data.log.issues[-1])


# -- loading ahead -------------------------------------------------------------------------


def test_the_next_images_heatmaps_are_made_while_this_one_is_scored(tmp_path: Path,
                                                                    monkeypatch) -> None:
    """The encoders of the next image run while this one's metrics do: scoring the first
    image's samples waits until the second image's heatmaps have been asked for (it would
    wait in vain if they were asked for only after it)."""
    import threading

    from lesionloc_runtime.evaluation import runner

    truth = make_ms_cxr(tmp_path)

    class Recording(OracleProvider):
        def __init__(self, truth: dict) -> None:
            super().__init__(truth)
            self.second = threading.Event()

        def heatmaps(self, image: Radiograph, texts: Sequence[str]) -> np.ndarray:
            if image_key(image) == MSCXR_B:
                self.second.set()
            return super().heatmaps(image, texts)

    provider = Recording(truth)
    waited = []
    real = runner._score_sample

    def score(grounding, mask, maps, threshold):
        if grounding.prompt != "small right apical pneumothorax":  # image A's samples
            waited.append(provider.second.wait(timeout=10))
        return real(grounding, mask, maps, threshold)

    monkeypatch.setattr(runner, "_score_sample", score)
    run = evaluate(open_dataset("ms-cxr", tmp_path), provider, progress=False)
    assert waited == [True, True]
    assert [c[0] for c in provider.calls] == [MSCXR_A, MSCXR_B]
    assert len(run.samples) == 3 and all(s.scores.pointing_game == 1.0 for s in run.samples)


def test_what_goes_wrong_is_logged_in_the_images_order_while_loading_ahead(
        tmp_path: Path) -> None:
    """The second image fails to read while the first is being scored; the first image's
    warning still comes first, as when images were read one after the other."""
    truth = make_ms_cxr(tmp_path, image_scale=0.5)
    (tmp_path / mscxr_path(MSCXR_B, "10000764", "57375967")).write_bytes(b"not a jpeg")
    run = evaluate(open_dataset("ms-cxr", tmp_path), OracleProvider(truth), progress=False)
    kinds = [(i.kind, "p10000032" in i.source) for i in run.log.issues  # image A's folder
             if i.kind in ("rescaled", "unreadable")]
    assert kinds[:2] == [("rescaled", True), ("unreadable", False)], run.log.issues
