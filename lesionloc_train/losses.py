"""The training objective L = Lg(v|t) + Lg(t|v) + Ll(v|t) + Ll(t|v): a global InfoNCE over the
(all-gathered) batch and a local loss whose units are report sentences attending over image
patches. Modules read like open_clip's ClipLoss: get_logits, get_ground_truth, forward."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from lesionloc_train.config import LossConfig


def gather_features(
    image_features: torch.Tensor, text_features: torch.Tensor, with_grad: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """All-gather both feature sets across processes. With gradients (as open_clip's
    gather_with_grad) each rank's features receive the gradient of every rank's loss."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return image_features, text_features
    if with_grad:
        import torch.distributed.nn.functional as dist_fn

        return (torch.cat(dist_fn.all_gather(image_features), dim=0),
                torch.cat(dist_fn.all_gather(text_features), dim=0))
    images = [torch.zeros_like(image_features) for _ in range(dist.get_world_size())]
    texts = [torch.zeros_like(text_features) for _ in range(dist.get_world_size())]
    dist.all_gather(images, image_features)
    dist.all_gather(texts, text_features)
    rank = dist.get_rank()
    images[rank], texts[rank] = image_features, text_features  # keep the local graph
    return torch.cat(images, dim=0), torch.cat(texts, dim=0)


class GlobalContrastiveLoss(nn.Module):
    """Symmetric InfoNCE between global image and report embeddings.

    Each process scores its own rows against all gathered columns (open_clip's local_loss
    mode); averaged over processes this equals the loss over the whole global batch.
    Returns the two terms separately: t2i = Lg(v|t), i2t = Lg(t|v).
    """

    def __init__(self, gather_with_grad: bool = True) -> None:
        super().__init__()
        self.gather_with_grad = gather_with_grad

    def get_logits(
        self, image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        all_images, all_texts = gather_features(image_features, text_features, self.gather_with_grad)
        logits_per_image = logit_scale * image_features @ all_texts.T
        logits_per_text = logit_scale * text_features @ all_images.T
        return logits_per_image, logits_per_text

    def get_ground_truth(self, device: torch.device, num_rows: int) -> torch.Tensor:
        offset = dist.get_rank() * num_rows if dist.is_available() and dist.is_initialized() else 0
        return torch.arange(num_rows, device=device) + offset

    def forward(
        self, image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        logits_per_image, logits_per_text = self.get_logits(image_features, text_features, logit_scale)
        labels = self.get_ground_truth(image_features.device, image_features.shape[0])
        return {
            "global_i2t": F.cross_entropy(logits_per_image.float(), labels),
            "global_t2i": F.cross_entropy(logits_per_text.float(), labels),
        }


class LocalSentenceLoss(nn.Module):
    """Sentences as local units (docs/design.md). For sentence j of report i and image b:
    a = softmax(s_ij . P_b / tau_a), c = sum_k a_k P_bk, r_ij^b = cos(s_ij, c);
    Z(i, b) = 1/gamma log sum_j exp(gamma r_ij^b) over report i's valid sentences;
    Ll(v|t) = CE over images of Z(i, .)/tau_l, Ll(t|v) = CE over reports of Z(., b)/tau_l.
    Computed within one process's batch. Reports without valid sentences are left out.

    With a `focus` mask (the finding sentences) and a sentence weight, a third term gives each
    finding sentence its own contrast: Ls(v|s) = CE over images of r_ij^. / tau_l, label i. The
    soft maximum Z lets a report's best sentence carry it, so a small finding beside a larger one
    gets little gradient; this term does not. Images whose report holds the same sentence (equal
    `groups` ids) are left out of that sentence's negatives: they show the same finding.
    """

    def __init__(self, attention_temperature: float = 0.25, gamma: float = 5.0,
                 temperature: float = 0.1) -> None:
        super().__init__()
        self.attention_temperature = attention_temperature
        self.gamma = gamma
        self.temperature = temperature

    def alignment(self, sentences: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """r (B_reports, S, B_images): cosine of each sentence with its attended context."""
        flat = patches.flatten(1, -2)  # (B, K, D)
        sim = torch.einsum("isd,bkd->isbk", sentences, flat)
        attention = torch.softmax(sim / self.attention_temperature, dim=-1)
        context = torch.einsum("isbk,bkd->isbd", attention, flat)
        return F.cosine_similarity(sentences.unsqueeze(2), context, dim=-1, eps=1e-6)

    def report_logits(self, r: torch.Tensor, sentence_mask: torch.Tensor) -> torch.Tensor:
        """Z(i, b) / tau_l as a (B_reports, B_images) matrix from the alignments r and the
        reports' valid sentences (rows of empty reports are -inf)."""
        masked = (self.gamma * r).masked_fill(~sentence_mask.unsqueeze(-1), float("-inf"))
        z = torch.logsumexp(masked, dim=1) / self.gamma
        return z / self.temperature

    def sentence_term(self, r: torch.Tensor, focus: torch.Tensor,
                      groups: torch.Tensor | None) -> torch.Tensor:
        """Ls(v|s): each focus sentence (i, j) picks image i among the batch's images from
        r_ij^b / tau_l; images b != i whose report holds sentence j's group are not negatives."""
        rows, cols = torch.nonzero(focus, as_tuple=True)
        if rows.numel() == 0:
            return r.sum() * 0.0
        logits = r[rows, cols] / self.temperature  # (N, B_images)
        if groups is not None:
            group = groups[rows, cols]  # (N,)
            same = (groups.unsqueeze(0) == group.view(-1, 1, 1)).any(dim=-1)  # (N, B_reports)
            same &= group.view(-1, 1) >= 0
            same[torch.arange(rows.numel(), device=r.device), rows] = False  # keep the positive
            logits = logits.masked_fill(same, float("-inf"))
        return F.cross_entropy(logits, rows)

    def forward(
        self, sentences: torch.Tensor, sentence_mask: torch.Tensor, patches: torch.Tensor,
        focus: torch.Tensor | None = None, groups: torch.Tensor | None = None,
        sentence_weight: float = 0.0,
    ) -> dict[str, torch.Tensor]:
        valid = sentence_mask.any(dim=1)
        with_sentences = sentence_weight > 0 and focus is not None
        if int(valid.sum()) < 2:  # no negatives to contrast with
            zero = sentences.sum() * 0.0 + patches.sum() * 0.0
            terms = {"local_t2i": zero, "local_i2t": zero}
            if with_sentences:
                terms["local_sentence"] = zero
            return terms
        mask = sentence_mask[valid]
        r = self.alignment(sentences[valid].float(), patches[valid].float())
        logits = self.report_logits(r, mask)
        labels = torch.arange(logits.shape[0], device=logits.device)
        terms = {
            "local_t2i": F.cross_entropy(logits, labels),  # each report picks its image
            "local_i2t": F.cross_entropy(logits.T, labels),  # each image picks its report
        }
        if with_sentences:
            assert focus is not None
            kept_groups = groups[valid] if groups is not None else None
            terms["local_sentence"] = self.sentence_term(r, focus[valid] & mask, kept_groups)
        return terms


class LesionLocLoss(nn.Module):
    """Weighted sum of the four terms; returns the total and each term for logging."""

    def __init__(self, cfg: LossConfig, gather_with_grad: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.global_loss = GlobalContrastiveLoss(gather_with_grad)
        self.local_loss = LocalSentenceLoss(cfg.attention_temperature, cfg.aggregation_gamma,
                                            cfg.local_temperature)
        self.weights = {"global_t2i": cfg.global_t2i, "global_i2t": cfg.global_i2t,
                        "local_t2i": cfg.local_t2i, "local_i2t": cfg.local_i2t,
                        "local_sentence": cfg.local_sentence}

    def forward(
        self,
        image_global: torch.Tensor,
        patches: torch.Tensor,
        report_global: torch.Tensor,
        sentences: torch.Tensor,
        sentence_mask: torch.Tensor,
        logit_scale: torch.Tensor,
        focus: torch.Tensor | None = None,
        groups: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """focus: (B, S) bool, the finding sentences that get their own contrast (with
        loss.local_sentence > 0); groups: (B, S) long, equal ids for equal sentence texts."""
        terms: dict[str, torch.Tensor] = {}
        if self.cfg.uses_global:
            terms.update(self.global_loss(image_global, report_global, logit_scale))
        if self.cfg.uses_local:
            terms.update(self.local_loss(sentences, sentence_mask, patches, focus, groups,
                                         self.cfg.local_sentence))
        total = sum(self.weights[k] * v for k, v in terms.items())
        terms["loss"] = total  # type: ignore[assignment]
        return terms
