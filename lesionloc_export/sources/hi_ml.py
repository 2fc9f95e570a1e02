"""BioViL and BioViL-T (Microsoft, hi-ml-multimodal; MIT) from their Hugging Face snapshots:
the image model (torchvision ResNet-50; BioViL-T adds a 1x1 convolution to 256 channels and,
with no prior image, a learnt "missing previous" embedding) with its 1x1-convolution
projector, and CXR-BERT with its [CLS] projection head, rebuilt with the published names."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lesionloc_export.source import SourceModel, file_digest
from lesionloc_export.sources.pickles import load_pickle
from lesionloc_export.sources.resnet import ResNet50
from lesionloc_export.sources.tokenizer import bert_tokenizer_json
from lesionloc_export.sources.weights import (
    load_mapped,
    read_bert_config,
    read_snapshot_weights,
)
from lesionloc_runtime.architectures import GridSpec, TextConfig
from lesionloc_runtime.errors import CheckpointError
from lesionloc_runtime.heatmap import HeatmapConfig
from lesionloc_runtime.preprocess import PreprocessConfig

JOINT_DIM = 128
RESIZE = 512  # hi-ml's TRANSFORM_RESIZE
CROP = {"biovil": 480, "biovil-t": 448}
IMAGE_WEIGHTS = {"biovil": "biovil_image_resnet50_proj_size_128.pt",
                 "biovil-t": "biovil_t_image_model_proj_size_128.pt"}
HUB = {"biovil": "microsoft/BiomedVLP-CXR-BERT-specialized", "biovil-t": "microsoft/BiomedVLP-BioViL-T"}
TITLE = {"biovil": "BioViL", "biovil-t": "BioViL-T"}
# (published prefix, our prefix)
IMAGE_RENAME = (("encoder.encoder.", "resnet."), ("encoder.backbone_to_vit.", "vit_proj."),
                ("encoder.missing_previous_emb", "missing_previous"), ("projector.model.", "patch_proj."))
TEXT_RENAME = (("bert.", "bert."), ("cls_projection_head.", "text_proj."))
VIT_DIM = 256  # BioViL-T's temporal pooler width


def vit_pooler_shapes(dim: int = VIT_DIM, blocks: int = 3) -> dict[str, tuple[int, ...]]:
    """BioViL-T's temporal pooler (used only with a prior image, so not run here, but part of
    the published weights): checked so a BioViL file cannot pass for BioViL-T."""
    shapes: dict[str, tuple[int, ...]] = {"encoder.vit_pooler.type_embed": (2, 1, dim),
                                          "encoder.vit_pooler.norm_post.weight": (dim,),
                                          "encoder.vit_pooler.norm_post.bias": (dim,)}
    for b in range(blocks):
        p = f"encoder.vit_pooler.blocks.{b}."
        for norm in ("norm1", "norm2"):
            shapes[p + f"{norm}.weight"] = shapes[p + f"{norm}.bias"] = (dim,)
        for proj in ("proj_q", "proj_k", "proj_v", "proj"):
            shapes[p + f"attn.{proj}.weight"] = (dim, dim)
        shapes[p + "attn.proj.bias"] = (dim,)
        for fc in ("fc1", "fc2"):
            shapes[p + f"mlp.{fc}.weight"], shapes[p + f"mlp.{fc}.bias"] = (dim, dim), (dim,)
    return shapes


class HiMLImageGraph(nn.Module):
    """pixel_values (B, 1, S, S) in [0, 1] -> unit global embedding (the mean of the projected
    patches, normalized) and unit projected patches (B, S/32, S/32, 128). hi-ml feeds ToTensor's
    [0, 1] grey image repeated on three channels, with no mean/std."""

    def __init__(self, temporal: bool) -> None:
        super().__init__()
        self.resnet = ResNet50(with_fc=False)
        self.temporal = temporal
        width = 2048
        if temporal:
            self.vit_proj = nn.Conv2d(2048, VIT_DIM, 1, bias=False)
            self.missing_previous = nn.Parameter(torch.zeros(1, VIT_DIM, 1, 1))
            width = 2 * VIT_DIM
        self.patch_proj = nn.Sequential(nn.Conv2d(width, JOINT_DIM, 1, bias=False),
                                        nn.BatchNorm2d(JOINT_DIM), nn.ReLU(inplace=True),
                                        nn.Conv2d(JOINT_DIM, JOINT_DIM, 1))

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.resnet.stages(pixel_values, grey=True)[-1]  # hi-ml repeats it on 3 channels
        if self.temporal:
            current = self.vit_proj(features)
            previous = self.missing_previous.expand(-1, -1, current.shape[2], current.shape[3])
            features = torch.cat([current, previous.expand(current.shape[0], -1, -1, -1)], dim=1)
        projected = self.patch_proj(features)
        image = F.normalize(projected.mean(dim=(2, 3)), dim=-1)
        return image, F.normalize(projected, dim=1).permute(0, 2, 3, 1)


class CxrBertTextGraph(nn.Module):
    """input_ids, attention_mask -> the unit [CLS] projection (CXR-BERT's
    get_projected_text_embeddings), as both the sentence and the global embedding."""

    def __init__(self, config: object, projection: int = JOINT_DIM) -> None:
        super().__init__()
        from transformers import BertModel

        self.bert = BertModel(config, add_pooling_layer=False)
        hidden = int(config.hidden_size)
        self.text_proj = nn.ModuleDict({
            "dense_to_hidden": nn.Linear(hidden, projection),
            "LayerNorm": nn.LayerNorm(projection, eps=1e-12),
            "dense_to_output": nn.Linear(projection, projection),
        })

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cls = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, 0]
        return self._project(cls)

    def packed(self, input_ids: torch.Tensor, position_ids: torch.Tensor,
               window_mask: torch.Tensor, window_pooling: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token windows packed into rows (the runtime's contract.PACKED_TEXT_INPUTS), each
        window's [CLS] picked by its row of `window_pooling`."""
        from lesionloc_train.model import pool_packed

        return self._project(pool_packed(self.bert, input_ids, position_ids, window_mask,
                                         window_pooling))

    def _project(self, cls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        head = self.text_proj
        x = head["dense_to_output"](head["LayerNorm"](F.gelu(head["dense_to_hidden"](cls))))
        x = F.normalize(x, dim=-1)
        return x, x


def image_weights_path(kind: str, snapshot: Path, given: Path | None) -> Path:
    if given is not None:
        return given
    path = snapshot / IMAGE_WEIGHTS[kind]
    if not path.is_file():
        raise CheckpointError(f"{snapshot}: no {TITLE[kind]} image weights ({IMAGE_WEIGHTS[kind]}); "
                              "pass --image-weights FILE")
    return path


def hi_ml_source(kind: str, snapshot: Path, image_weights: Path | None, work: Path) -> SourceModel:
    title = TITLE[kind]
    if not snapshot.is_dir():
        raise CheckpointError(f"{snapshot}: not a directory: --from {kind} takes the Hugging Face "
                              f"snapshot of {HUB[kind]}")
    config = read_bert_config(snapshot, f"{title} text model")
    text_file, text_state = read_snapshot_weights(snapshot, f"{title} text model")
    text = CxrBertTextGraph(config, int(getattr(config, "projection_size", JOINT_DIM)))
    load_mapped(text, text_state, TEXT_RENAME, f"{title} text weights", text_file)
    weights = image_weights_path(kind, snapshot, image_weights)
    image_state = load_pickle(weights, f"{title} image weights")
    if not isinstance(image_state, dict):
        raise CheckpointError(f"{weights}: {title} image weights are not a state dict")
    image = HiMLImageGraph(temporal=kind == "biovil-t")
    extra = vit_pooler_shapes() if kind == "biovil-t" else None
    load_mapped(image, image_state, IMAGE_RENAME, f"{title} image weights", weights, extra)
    crop = CROP[kind]
    return SourceModel(
        architecture=kind, image_graph=image.eval(), text_graph=text.eval(),
        text_backbone=text.bert, tokenizer=bert_tokenizer_json(snapshot, work / "tokenizer.json",
                                                               f"{title} text model"),
        max_length=int(config.max_position_embeddings), embed_dim=JOINT_DIM,
        preprocessing=PreprocessConfig(image_size=crop, intensity="minmax-uint8",
                                       interpolation="pil-bilinear", method="resize-crop",
                                       resize=RESIZE),
        grid=GridSpec.cell_centres(crop, crop // 32),
        text=TextConfig(preparation="hi-ml", pooling="cls-projection"),
        heatmap=HeatmapConfig(smoothing_sigma=1.5, similarity="cosine", score="global-cosine",
                              smoothing_border="reflect", upsampling="bilinear"),
        default_name=kind, trained_on="MIMIC-CXR (as published by Microsoft; see the model card)",
        provenance={"source": HUB[kind], "image_weights": file_digest(weights),
                    "text_weights": file_digest(text_file)},
        describe=lambda trained_on: describe(kind, trained_on),
    )


def describe(kind: str, trained_on: str) -> list[str]:
    title = TITLE[kind]
    return [
        "## What it is",
        f"{title} (Microsoft Research; hi-ml-multimodal, MIT licence), converted from the published "
        f"weights of {HUB[kind]}: a ResNet-50 image encoder"
        + (" with BioViL-T's single-image path (no prior study)" if kind == "biovil-t" else "")
        + " and CXR-BERT, phrase grounding by the cosine of the projected patch embeddings with "
        "the projected [CLS] embedding of the sentence, smoothed with sigma 1.5 on the patch grid "
        f"and upsampled bilinearly into the {CROP[kind]} px centre crop of the 512 px resize "
        "(nothing outside the crop).", "",
        "## Training", f"- data: {trained_on}",
        "- see Boecking et al. 2022 (BioViL) and Bannur et al. 2023 (BioViL-T)", "",
        "## Intended use",
        "Research on phrase grounding in chest radiographs. Not for diagnosis, triage or any "
        "clinical decision.", "",
        "## Limitations",
        "A research model: not a medical device, not clinically validated. The model sees only "
        "the central crop of the image; findings at the image edges are outside it.",
    ]
