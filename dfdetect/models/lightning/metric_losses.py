"""Metric-learning losses of the identity-based detectors (their distance threshold is
``dfdetect.scoring.roc.eer_cut``)."""

from __future__ import annotations

import torch


def _log1p_sum_exp(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Row-wise ``log(1 + sum_k exp(x_ik))`` over the masked entries, computed stably."""
    x = x.masked_fill(~mask, float("-inf"))
    return torch.logsumexp(torch.cat([torch.zeros_like(x[:, :1]), x], dim=1), dim=1)


def multi_similarity_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    alpha: float = 2.0,
    beta: float = 50.0,
    base: float = 0.5,
) -> torch.Tensor:
    """Multi-similarity loss (Wang et al., CVPR 2019) over L2-normalised ``embeddings (N, D)``,
    without pair mining: for every anchor,
    ``1/alpha log(1 + sum_pos exp(-alpha (S - base))) + 1/beta log(1 + sum_neg exp(beta (S - base)))``,
    averaged over anchors that have at least one pair. Labels below 0 (unknown) are left out."""
    keep = labels >= 0
    emb, lab = embeddings[keep], labels[keep]
    if len(lab) < 2:
        return embeddings.sum() * 0.0
    sim = emb @ emb.T
    same = lab[:, None] == lab[None, :]
    eye = torch.eye(len(lab), dtype=torch.bool, device=lab.device)
    pos, neg = same & ~eye, ~same
    loss = (
        _log1p_sum_exp(-alpha * (sim - base), pos) / alpha + _log1p_sum_exp(beta * (sim - base), neg) / beta
    )
    anchors = pos.any(dim=1) | neg.any(dim=1)
    return loss[anchors].mean()


def contrastive_loss(distances: torch.Tensor, dissimilar: torch.Tensor, margin: float) -> torch.Tensor:
    """Hadsell et al. 2006, as FakeTalkerDetect writes it: ``(1 - y) d^2 + y max(margin - d, 0)^2``,
    y = 1 for a dissimilar pair."""
    y = dissimilar.float()
    return ((1.0 - y) * distances.square() + y * (margin - distances).clamp(min=0).square()).mean()
