"""hi-ml-multimodal's own classes (BioViL, BioViL-T) for the parity tests: built at random init,
saved in the layout of the published files, and run as hi-ml runs them.

hi-ml-multimodal, timm and torchvision are installed with --no-deps into .venv/hi-ml (the
README's test command), outside site-packages: PyPI's torchvision is a CUDA build whose
compiled ops do not load beside the CPU torch, and transformers imports torchvision whenever
it can find it. `import_hi_ml` puts that folder on sys.path only here, after declaring the two
operator schemas torchvision registers fake kernels for, so its pure-Python parts load."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

HI_ML_DIR = Path(sys.prefix) / "hi-ml"
_LIBRARY = []


def import_hi_ml() -> SimpleNamespace:
    """hi-ml's modules, or a skip naming the install step when they are absent."""
    if not (HI_ML_DIR / "health_multimodal").is_dir():
        pytest.skip(f"hi-ml-multimodal is not installed in {HI_ML_DIR} (see the README's test "
                    "command)")
    if not _LIBRARY:
        library = torch.library.Library("torchvision", "DEF")
        library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _LIBRARY.append(library)
        sys.path.insert(0, str(HI_ML_DIR))
    from health_multimodal.image.data.io import remap_to_uint8
    from health_multimodal.image.data.transforms import create_chest_xray_transform_for_inference
    from health_multimodal.image.model.model import ImageModel
    from health_multimodal.image.model.types import ImageEncoderType
    from health_multimodal.text.model import CXRBertConfig, CXRBertModel, CXRBertTokenizer
    from health_multimodal.vlp.inference_engine import ImageTextInferenceEngine

    return SimpleNamespace(
        remap_to_uint8=remap_to_uint8, ImageModel=ImageModel, ImageEncoderType=ImageEncoderType,
        create_chest_xray_transform_for_inference=create_chest_xray_transform_for_inference,
        CXRBertConfig=CXRBertConfig, CXRBertModel=CXRBertModel, CXRBertTokenizer=CXRBertTokenizer,
        ImageTextInferenceEngine=ImageTextInferenceEngine)


def write_snapshot(out: Path, kind: str, seed: int = 0) -> Path:
    """hi-ml's ImageModel and CXRBertModel at random init (full size; batch-norm statistics
    moved off their defaults), saved as the published snapshot is laid out."""
    from lesionloc_export.sources.hi_ml import IMAGE_WEIGHTS
    from lesionloc_export.sources.published import randomize_batch_norms, write_tokenizer_files

    hm = import_hi_ml()
    torch.manual_seed(seed)
    encoder = hm.ImageEncoderType.RESNET50_MULTI_IMAGE if kind == "biovil-t" else \
        hm.ImageEncoderType.RESNET50
    image = hm.ImageModel(img_encoder_type=encoder, joint_feature_size=128)
    randomize_batch_norms(image, seed)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(image.state_dict(), out / IMAGE_WEIGHTS[kind])
    text = hm.CXRBertModel(hm.CXRBertConfig(vocab_size=30522, projection_size=128))
    text.save_pretrained(out)
    write_tokenizer_files(out, 30522, lower_case=True)
    return out


class HiMLReference:
    """A snapshot run by hi-ml's code: its transform, model forward, similarity map and mapping
    back to the original image. The image is handed over as hi-ml's load_image would make it
    from our reader's display pixels (its own remap_to_uint8), so both sides see the same
    pixels; the text goes through hi-ml's prompt rule and the model's own projection (its
    TextInferenceEngine calls batch_encode_plus, which transformers 5 removed)."""

    def __init__(self, snapshot: Path, kind: str) -> None:
        from lesionloc_export.sources.hi_ml import CROP, IMAGE_WEIGHTS, RESIZE

        hm = self.hm = import_hi_ml()
        encoder = hm.ImageEncoderType.RESNET50_MULTI_IMAGE if kind == "biovil-t" else \
            hm.ImageEncoderType.RESNET50
        self.image = hm.ImageModel(img_encoder_type=encoder, joint_feature_size=128,
                                   pretrained_model_path=snapshot / IMAGE_WEIGHTS[kind]).eval()
        self.tokenizer = hm.CXRBertTokenizer.from_pretrained(snapshot)
        self.text = hm.CXRBertModel.from_pretrained(snapshot).eval()
        self.resize, self.crop = RESIZE, CROP[kind]
        self.transform = hm.create_chest_xray_transform_for_inference(RESIZE, CROP[kind])

    @torch.no_grad()
    def encode_image(self, pixels: np.ndarray) -> tuple[np.ndarray, torch.Tensor, tuple[int, int]]:
        from PIL import Image

        picture = Image.fromarray(self.hm.remap_to_uint8(pixels)).convert("L")
        x = self.transform(picture).unsqueeze(0)
        glob = torch.nn.functional.normalize(self.image(x).projected_global_embedding, dim=-1)
        patches = self.image.get_patchwise_projected_embeddings(x, normalize=True)[0]
        return glob[0].numpy(), patches, picture.size

    @torch.no_grad()
    def encode_text(self, prompt: str) -> torch.Tensor:
        tokens = self.tokenizer([prompt.rstrip("!?.")], padding="longest", return_tensors="pt")
        return self.text.get_projected_text_embeddings(tokens.input_ids, tokens.attention_mask)

    def similarity_map(self, patches: torch.Tensor, text: torch.Tensor,
                       size: tuple[int, int]) -> np.ndarray:
        engine = self.hm.ImageTextInferenceEngine
        sim = engine._get_similarity_map_from_embeddings(patches, text)
        return engine.convert_similarity_to_image_size(
            sim, width=size[0], height=size[1], resize_size=self.resize, crop_size=self.crop,
            interpolation="bilinear")
