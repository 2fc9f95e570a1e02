"""The image-report model of docs/design.md: a ResNet image encoder (local grid from stage 3,
global from pooled stage 4) and a BERT-family text encoder, each projected to a shared D-dim
space."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lesionloc_runtime.errors import ConfigError
from lesionloc_train.config import ImageEncoderConfig, ModelConfig, TextEncoderConfig


def _offline_hint(name: str, what: str) -> str:
    return (
        f"cannot load the {what} {name!r}. Without network access, download it elsewhere "
        f"(e.g. `hf download {name} --local-dir DIR`) and set the model path to that local "
        "directory (e.g. --set model.text.model=DIR)"
    )


def upsample_aligned(x: torch.Tensor, factor: int, size: tuple[int, ...] | torch.Size) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, *size): a coarser grid brought onto a `factor` times finer one,
    cell centres kept where they are. Cell k of stride s sees input coordinate s * k + 0.5
    (see grid_origin), so fine cell i sits at coarse coordinate i / factor: linear
    interpolation with the corners aligned on the grid extended by one replicated cell."""
    x = F.pad(x, (0, 1, 0, 1), mode="replicate")
    h, w = x.shape[-2:]
    x = F.interpolate(x, size=((h - 1) * factor + 1, (w - 1) * factor + 1), mode="bilinear",
                      align_corners=True)
    return x[..., : size[0], : size[1]]


class ImageEncoder(nn.Module):
    """pixel_values (B, 1, S, S) in [0, 1] -> global (B, D) and patch grid (B, h, w, D)."""

    def __init__(self, cfg: ImageEncoderConfig, embed_dim: int,
                 backbone_config: dict[str, Any] | None = None, heatmap_source: str = "local") -> None:
        super().__init__()
        from transformers import ResNetConfig, ResNetModel

        if backbone_config is not None:  # rebuilding from a checkpoint: architecture only
            self.backbone = ResNetModel(ResNetConfig.from_dict(backbone_config))
        elif cfg.backbone:
            try:
                self.backbone = ResNetModel.from_pretrained(cfg.backbone)
            except (OSError, ValueError) as exc:
                raise ConfigError(_offline_hint(cfg.backbone, "image backbone") + f" ({exc})") from None
        elif cfg.resnet:
            self.backbone = ResNetModel(ResNetConfig(**cfg.resnet))
        else:
            raise ConfigError("model.image needs a backbone (hub id or directory) or a resnet config")
        config = self.backbone.config
        if not 1 <= cfg.local_stage <= len(config.hidden_sizes):
            raise ConfigError(f"model.image.local_stage must be in 1..{len(config.hidden_sizes)}")
        self.local_stage = cfg.local_stage
        self.channels = int(config.num_channels)
        mean = torch.tensor(cfg.mean[: self.channels] if self.channels < 3 else cfg.mean)
        std = torch.tensor(cfg.std[: self.channels] if self.channels < 3 else cfg.std)
        self.register_buffer("pixel_mean", mean.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", std.view(1, -1, 1, 1), persistent=False)
        self.local_proj = nn.Conv2d(config.hidden_sizes[cfg.local_stage - 1], embed_dim, 1)
        deeper = range(cfg.local_stage + 1, len(config.hidden_sizes) + 1) if cfg.local_fusion else ()
        self.fusion_stages = tuple(deeper)
        self.fusion_proj = nn.ModuleList(nn.Conv2d(config.hidden_sizes[s - 1], embed_dim, 1)
                                         for s in self.fusion_stages)
        self.global_proj = nn.Linear(config.hidden_sizes[-1], embed_dim)
        # "global": the patch grid is the global projection applied at each location of the last
        # stage, scaled so the cells average to the unit global embedding: each cell is that
        # location's share of the image-sentence score (class activation). A model trained
        # without the local loss has untrained local heads; this is its honest heatmap.
        self.heatmap_source = heatmap_source
        stage = len(config.hidden_sizes) if heatmap_source == "global" else cfg.local_stage
        self.stride = 4 * 2 ** (stage - 1)
        if heatmap_source == "global":
            self.local_proj.requires_grad_(False)  # unused (kept so checkpoints load); DDP-safe
            self.fusion_proj.requires_grad_(False)
        # ResNet's strided convolutions (k=7/3/1, padding k//2) centre output k on input pixel
        # stride * k, i.e. continuous coordinate stride * k + 0.5 (tests measure it).
        self.grid_origin = 0.5

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = pixel_values.expand(-1, self.channels, -1, -1)
        x = (x - self.pixel_mean) / self.pixel_std
        out = self.backbone(x, output_hidden_states=True, return_dict=True)
        raw = self.global_proj(out.pooler_output.flatten(1))
        glob = F.normalize(raw, dim=-1)
        if self.heatmap_source == "global":
            # not normalized per cell (that would throw away how much each location says):
            # scaled so that the cells average to the unit global embedding exactly
            cells = self.global_proj(out.last_hidden_state.permute(0, 2, 3, 1))  # (B, h, w, D)
            return glob, cells / raw.norm(dim=-1).clamp_min(1e-12)[:, None, None, None]
        local = self.local_proj(out.hidden_states[self.local_stage])  # (B, D, h, w)
        for stage, proj in zip(self.fusion_stages, self.fusion_proj, strict=True):
            coarse = proj(out.hidden_states[stage])
            local = local + upsample_aligned(coarse, 2 ** (stage - self.local_stage),
                                             local.shape[-2:])
        patches = F.normalize(local.permute(0, 2, 3, 1), dim=-1)
        return glob, patches


def pool_packed(backbone: nn.Module, input_ids: torch.Tensor, position_ids: torch.Tensor,
                window_mask: torch.Tensor, window_pooling: torch.Tensor,
                hidden: Callable[[Any], torch.Tensor] = lambda out: out.last_hidden_state,
                **kwargs: Any) -> torch.Tensor:
    """A transformers encoder on token windows packed into rows (the runtime's
    contract.PACKED_TEXT_INPUTS: positions restarting per window, attention within it as
    the 4-D boolean mask transformers takes), each window pooled by its row of
    `window_pooling` over `hidden(outputs)` (the last layer unless said), rows flattened."""
    out = backbone(input_ids=input_ids, position_ids=position_ids,
                   attention_mask=window_mask[:, None].bool(), **kwargs)
    states = hidden(out)
    return window_pooling.to(states.dtype) @ states.flatten(0, 1)


class TextEncoder(nn.Module):
    """input_ids, attention_mask (N, L) -> sentence (local) and global embeddings (N, D)."""

    def __init__(self, cfg: TextEncoderConfig, embed_dim: int,
                 backbone_config: dict[str, Any] | None = None, heatmap_source: str = "local") -> None:
        super().__init__()
        self.heatmap_source = heatmap_source  # "global": sentences use the global projection
        from transformers import AutoConfig, AutoModel, BertConfig, BertModel

        if backbone_config is not None:
            settings = dict(backbone_config)
            config = AutoConfig.for_model(settings.pop("model_type"), **settings)
            self.backbone = AutoModel.from_config(config)
        elif cfg.model:
            try:
                self.backbone = AutoModel.from_pretrained(cfg.model)
            except (OSError, ValueError) as exc:
                raise ConfigError(_offline_hint(cfg.model, "text encoder") + f" ({exc})") from None
        elif cfg.bert:
            self.backbone = BertModel(BertConfig(**cfg.bert), add_pooling_layer=False)
        else:
            raise ConfigError("model.text needs a model (hub id or directory) or a bert config")
        if getattr(self.backbone, "pooler", None) is not None:
            self.backbone.pooler = None  # unused (we pool ourselves); DDP needs no dead params
        if cfg.pooling not in ("mean", "cls"):
            raise ConfigError(f"model.text.pooling must be mean or cls, not {cfg.pooling!r}")
        self.pooling = cfg.pooling
        hidden = int(self.backbone.config.hidden_size)
        self.local_proj = nn.Linear(hidden, embed_dim)
        self.global_proj = nn.Linear(hidden, embed_dim)
        if heatmap_source == "global":
            self.local_proj.requires_grad_(False)  # unused (kept so checkpoints load); DDP-safe
        self._freeze(cfg)

    def _freeze(self, cfg: TextEncoderConfig) -> None:
        if cfg.freeze_embeddings and hasattr(self.backbone, "embeddings"):
            self.backbone.embeddings.requires_grad_(False)
        if cfg.freeze_layers:
            layers = getattr(getattr(self.backbone, "encoder", None), "layer", None)
            if layers is None:
                raise ConfigError("freeze_layers needs a BERT-style encoder.layer list")
            for layer in list(layers)[: cfg.freeze_layers]:
                layer.requires_grad_(False)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
        hidden = out.last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return self._project(pooled)

    def forward_packed(
        self, input_ids: torch.Tensor, position_ids: torch.Tensor, window_mask: torch.Tensor,
        window_pooling: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token windows packed into rows (the runtime's contract.PACKED_TEXT_INPUTS, the
        pooling weights built for this encoder's pooling): the same embeddings as `forward`
        on each window alone."""
        return self._project(pool_packed(self.backbone, input_ids, position_ids, window_mask,
                                         window_pooling))

    def _project(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        glob = F.normalize(self.global_proj(pooled), dim=-1)
        if self.heatmap_source == "global":
            return glob, glob
        return F.normalize(self.local_proj(pooled), dim=-1), glob


class LesionLocModel(nn.Module):
    """Both encoders and the learnable global temperature (as a log logit scale, like CLIP)."""

    def __init__(self, cfg: ModelConfig, init_temperature: float = 0.07,
                 backbone_configs: dict[str, dict[str, Any]] | None = None) -> None:
        super().__init__()
        configs = backbone_configs or {}
        self.config = cfg
        source = "global" if cfg.heatmap_source == "global" else "local"  # "auto" unresolved: local
        self.image_encoder = ImageEncoder(cfg.image, cfg.embed_dim, configs.get("image"), source)
        self.text_encoder = TextEncoder(cfg.text, cfg.embed_dim, configs.get("text"), source)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))

    def forward(
        self,
        pixel_values: torch.Tensor,
        report_ids: torch.Tensor,
        report_mask: torch.Tensor,
        sentence_ids: torch.Tensor,
        sentence_mask: torch.Tensor,
        need_global: bool = True,
        need_local: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """One training forward (a single call, so DDP sees every parameter use):
        (image global, patch grid, report global or None, sentence embeddings or None)."""
        image_global, patches = self.image_encoder(pixel_values)
        report_global = self.text_encoder(report_ids, report_mask)[1] if need_global else None
        sentences = None
        if need_local and sentence_ids.shape[0] > 0:
            sentences = self.text_encoder(sentence_ids, sentence_mask)[0]
        return image_global, patches, report_global, sentences

    def encode_image(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.image_encoder(pixel_values)

    def encode_text(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.text_encoder(input_ids, attention_mask)

    def backbone_configs(self) -> dict[str, dict[str, Any]]:
        """Architecture of both backbones, enough to rebuild the model with no download."""
        return {"image": self.image_encoder.backbone.config.to_dict(),
                "text": self.text_encoder.backbone.config.to_dict()}

    @property
    def grid_stride(self) -> int:
        return self.image_encoder.stride

    @property
    def grid_origin(self) -> float:
        return self.image_encoder.grid_origin


def receptive_field_offsets(model: LesionLocModel, images: torch.Tensor,
                            cells: list[tuple[int, int]]) -> list[tuple[float, float]]:
    """For each (row, col) cell, where its patch embedding looks minus where heatmaps draw it
    (grid_origin + k * stride), in model pixels (x, y). "Where it looks" is the centroid of
    |d embedding / d input| summed over `images` (N, 1, size, size). Half a patch off is the
    classic mapping bug; used by the tests (random weights) and by
    scripts/receptive_field_check.py (trained checkpoints)."""
    size = images.shape[-1]
    stride, origin = model.grid_stride, model.grid_origin
    centres = torch.arange(size, dtype=torch.float32) + 0.5
    offsets = []
    for row, col in cells:
        pixels = images.detach().clone().requires_grad_(True)
        _, patches = model.encode_image(pixels)
        patches[:, row, col].sum().backward()
        weight = pixels.grad[:, 0].abs().sum(0)
        x = float((weight.sum(0) * centres).sum() / weight.sum())
        y = float((weight.sum(1) * centres).sum() / weight.sum())
        offsets.append((x - (origin + col * stride), y - (origin + row * stride)))
    return offsets


@dataclass
class TextTokenizer:
    """The training-side tokenizer: the same tokenizer.json the bundle ships, truncating."""

    path: Path

    def __post_init__(self) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(self.path))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        pad = self.tokenizer.token_to_id("[PAD]")
        self.pad_id = 0 if pad is None else pad

    def __call__(self, texts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        encodings = self.tokenizer.encode_batch(texts)
        ids = [e.ids[: max_length - 1] + e.ids[-1:] if len(e.ids) > max_length else e.ids
               for e in encodings]  # keep the final [SEP] when truncating
        length = max(1, max(len(i) for i in ids))
        input_ids = torch.full((len(ids), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(ids), length), dtype=torch.long)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, : len(seq)] = 1
        return input_ids, mask


def resolve_tokenizer(cfg: TextEncoderConfig, out_dir: Path, corpus: list[str] | None) -> Path:
    """Where the run's tokenizer.json comes from: an explicit file, the model directory's
    fast tokenizer, or a WordPiece vocabulary built from the training reports (tiny/demo)."""
    target = out_dir / "tokenizer.json"
    if cfg.tokenizer:
        source = Path(cfg.tokenizer)
        if not source.is_file():
            raise ConfigError(f"model.text.tokenizer: {source} not found")
        target.write_bytes(source.read_bytes())
        return target
    if cfg.model:
        from transformers import AutoTokenizer

        try:
            fast = AutoTokenizer.from_pretrained(cfg.model, use_fast=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(_offline_hint(cfg.model, "tokenizer") + f" ({exc})") from None
        backend = fast.backend_tokenizer
        backend.no_padding()
        backend.no_truncation()
        backend.save(str(target))
        return target
    if not corpus:
        raise ConfigError("building a vocabulary needs training reports")
    from lesionloc_train.vocab import build_wordpiece_tokenizer, save_tokenizer

    vocab_size = int((cfg.bert or {}).get("vocab_size", 2000))
    save_tokenizer(build_wordpiece_tokenizer(corpus, vocab_size), target)
    return target
