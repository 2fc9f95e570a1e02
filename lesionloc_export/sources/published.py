"""Full-size random-init models of each published architecture, written in the layout of the
published files (Hugging Face snapshot with image .pt; AFLoc's Lightning .ckpt and the
Bio_ClinicalBERT snapshot): what tests and benchmarks convert, since the real weights cannot
be downloaded where the project is built."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lesionloc_export.sources import afloc, hi_ml
from lesionloc_export.sources.weights import random_state

# Words of radiology reports, so that test sentences tokenize into whole words, as they mostly
# do with a radiology vocabulary (CXR-BERT's is built from PubMed and MIMIC-CXR text); a word
# missing here is spelled letter by letter, which made the reference report 131 tokens where
# our model's vocabulary of the phantom reports makes it 65. Bio_ClinicalBERT's vocabulary is
# BERT's general cased one, which splits more medical words than this does.
WORDS = (
    "the a of and in with no is are there small large left right upper lower middle lobe lung "
    "lungs pleural effusion effusions pneumothorax opacity opacities consolidation atelectasis "
    "edema cardiomegaly heart size normal mild moderate severe apical basal base bases zone "
    "nodule mass pneumonia interval unchanged new stable clear focal airspace disease chest "
    "silhouette mediastinal contours hilar vascular congestion tube line catheter tip "
    "seen projects over without evidence of acute cardiopulmonary process bilateral patchy "
    "retrocardiac hemidiaphragm costophrenic angle blunting "
    "examination indication comparison findings impression history technique none year old male "
    "female patient cough fever pain dyspnea pa ap frontal lateral view views portable upright "
    "prior previous study compared since today again now than as at by for from on to or not be "
    "been has have was were this that these which there within limits unremarkable otherwise "
    "pulmonary cardiac cardiomediastinal mediastinum aorta aortic hila hilum vasculature "
    "interstitial parenchymal perihilar basilar bibasilar bilaterally apex apices costophrenic "
    "angles diaphragm hemithorax thorax trachea spine ribs rib bones osseous soft tissue tissues "
    "structures place position positioned wires sternotomy clips pacemaker leads device devices "
    "tubes lines picc endotracheal nasogastric enteric terminates projecting overlying measuring "
    "measures approx approximately cm mm sided discoid midlung subsegmental linear plate like "
    "minimal trace tiny slight slightly mildly markedly increased decreased improved worsened "
    "resolved persistent residual likely possible possibly probable suggest suggests suggestive "
    "concerning consistent compatible cannot excluded exclude evaluation further recommend "
    "follow up ct correlation clinical scarring fibrosis emphysema hyperinflated volumes volume "
    "low loss collapse nodular nodules lesion lesions density densities calcified granuloma "
    "fracture fractures deformity degenerative changes change hernia hiatal free air "
    "pneumoperitoneum fluid overload failure infection aspiration infiltrate"
).split()


def synthetic_vocab(size: int) -> list[str]:
    """A BERT vocabulary of `size` entries (BERT's special-token layout, characters, ##
    continuations, radiology words, then unused slots): full-size embedding tables."""
    chars = [chr(c) for c in range(33, 127)]
    vocab = ["[PAD]", *[f"[unused{i}]" for i in range(99)], "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += chars + [f"##{c}" for c in chars if c.isalnum()]
    vocab += [w for w in dict.fromkeys(WORDS) if w not in vocab]
    vocab += [f"[unused{i}]" for i in range(99, 99 + size - len(vocab))]
    return vocab[:size]


def write_tokenizer_files(snapshot: Path, vocab_size: int, lower_case: bool | None) -> None:
    """vocab.txt, and tokenizer_config.json unless `lower_case` is None (Bio_ClinicalBERT's
    snapshot has none)."""
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot / "vocab.txt").write_text("\n".join(synthetic_vocab(vocab_size)) + "\n", encoding="utf-8")
    if lower_case is not None:
        (snapshot / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": lower_case}))


def randomize_batch_norms(module: nn.Module, seed: int) -> None:
    """Running statistics away from (0, 1), so a conversion that mishandles them shows."""
    generator = torch.Generator().manual_seed(seed)
    for layer in module.modules():
        if isinstance(layer, nn.BatchNorm2d):
            n = layer.num_features
            layer.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            layer.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            layer.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            layer.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)


def bert_config(vocab_size: int, **extra: Any) -> Any:
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, **extra)  # BERT-base: 12 x 768, 512 positions


def write_hi_ml_snapshot(out: Path, kind: str, seed: int = 0) -> Path:
    """A random-init `kind` ("biovil" or "biovil-t") snapshot at `out`, as downloaded."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    image = hi_ml.HiMLImageGraph(temporal=kind == "biovil-t")
    randomize_batch_norms(image, seed)
    extra = {"encoder.encoder.fc.weight": (1000, 2048), "encoder.encoder.fc.bias": (1000,)}
    if kind == "biovil-t":
        extra |= hi_ml.vit_pooler_shapes()
    torch.save(random_state(image, hi_ml.IMAGE_RENAME, extra, seed), out / hi_ml.IMAGE_WEIGHTS[kind])
    config = bert_config(30522)
    text = hi_ml.CxrBertTextGraph(config)
    save_file({k: v.contiguous() for k, v in random_state(text, hi_ml.TEXT_RENAME).items()},
              str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps({
        **config.to_dict(), "architectures": ["CXRBertModel"], "model_type": "cxr-bert",
        "projection_size": hi_ml.JOINT_DIM}, indent=2))
    write_tokenizer_files(out, 30522, lower_case=True)
    return out


AFLOC_HYPER_PARAMETERS: dict[str, Any] = {
    "phase": "pretrain",
    "model": {"norm": False, "vision": {"model_name": "resnet_50", "pretrained": True},
              "text": {"bert_type": "emilyalsentzer/Bio_ClinicalBERT", "last_n_layers": 4,
                       "aggregate_method": "sum", "norm": False, "embedding_dim": 768,
                       "agg_tokens": True, "take_sent_as_units": True},
              "afloc": {"use_local_word_loss": True}},
    "data": {"text": {"word_num": 97}, "image": {"imsize": 256}},
    "transforms": {"norm": "half"},
}


def afloc_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """AFLoc's state dict at random init, with the Lightning module's names ("afloc." ...)."""
    torch.manual_seed(seed)
    image = afloc.AflocImageGraph()
    randomize_batch_norms(image, seed)
    text = afloc.AflocTextGraph(bert_config(28996))
    extra = {"img_encoder.local2_embedder.weight": (768, 512, 1, 1),
             "text_encoder.model.pooler.dense.weight": (768, 768),
             "text_encoder.model.pooler.dense.bias": (768,)}
    state = {**random_state(image, afloc.IMAGE_RENAME, extra, seed),
             **random_state(text, afloc.TEXT_RENAME)}
    # transformers 4.2 saved BERT's position ids as a buffer
    state["text_encoder.model.embeddings.position_ids"] = torch.arange(512)[None]
    return {f"afloc.{k}": v for k, v in state.items()}


def write_afloc_checkpoint(ckpt: Path, text_model: Path, seed: int = 0,
                           hyper_parameters: Any = None) -> Path:
    """A random-init AFLoc Lightning checkpoint at `ckpt` and the Bio_ClinicalBERT snapshot
    files it needs at `text_model`. `hyper_parameters` defaults to AFLoc's config as a dict;
    the real checkpoint holds an OmegaConf DictConfig (tests pass one)."""
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    config = bert_config(28996)
    write_tokenizer_files(text_model, 28996, lower_case=None)
    (text_model / "config.json").write_text(json.dumps(
        {**config.to_dict(), "architectures": ["BertModel"], "model_type": "bert"}, indent=2))
    torch.save({"epoch": 4, "global_step": 1000, "pytorch-lightning_version": "1.1.4",
                "state_dict": afloc_state(seed),
                "hyper_parameters": AFLOC_HYPER_PARAMETERS if hyper_parameters is None
                else hyper_parameters}, ckpt)
    return ckpt
