"""Segmentation metrics, from one confusion matrix.

Taught in {ref}`sec-measuring` (chapter 2) (where the lab writes them by hand), and
used by the later labs. The four scores of the FCN paper (Long, Shelhamer and Darrell, 2015), with
:math:`n_{ij}` the number of pixels of class *i* predicted as *j* and :math:`t_i = \\sum_j n_{ij}`:

* pixel accuracy :math:`\\sum_i n_{ii} / \\sum_i t_i`
* mean accuracy :math:`\\frac{1}{k} \\sum_i n_{ii} / t_i`
* mean IoU :math:`\\frac{1}{k} \\sum_i n_{ii} / (t_i + \\sum_j n_{ji} - n_{ii})`
* frequency-weighted IoU :math:`(\\sum_k t_k)^{-1} \\sum_i t_i n_{ii} / (t_i + \\sum_j n_{ji} - n_{ii})`

Classes absent from both the labels and the predictions are left out of the means.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from .. import checks


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = None) -> torch.Tensor:
    """``(k, k)`` int64 counts: row = true class, column = predicted class. Pixels whose label is
    ``ignore_index`` are skipped."""
    checks.pair(pred, target, "confusion_matrix", "integer", ("predictions", "labels"))
    pred, target = pred.reshape(-1).long().cpu(), target.reshape(-1).long().cpu()
    keep = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    pred, target = pred[keep], target[keep]
    if target.numel() and (target.min() < 0 or target.max() >= num_classes or pred.min() < 0 or pred.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}) (or equal ignore_index={ignore_index})")
    return torch.bincount(target * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def scores_from_confusion(conf: torch.Tensor) -> dict:
    """Pixel accuracy, mean accuracy, mean IoU, frequency-weighted IoU and per-class IoU."""
    n = conf.double()
    diag, true, predicted = n.diag(), n.sum(1), n.sum(0)
    union = true + predicted - diag
    present = union > 0
    iu = torch.where(present, diag / union.clamp(min=1), torch.full_like(diag, float("nan")))
    acc = torch.where(true > 0, diag / true.clamp(min=1), torch.full_like(diag, float("nan")))
    total = true.sum().clamp(min=1)
    return {
        "pixel_acc": float(diag.sum() / total),
        "mean_acc": float(acc[true > 0].mean()) if (true > 0).any() else float("nan"),
        "mean_iou": float(iu[present].mean()) if present.any() else float("nan"),
        "fw_iou": float((true[present] * iu[present]).sum() / total),
        "per_class_iou": iu,
    }


def boundary_f1(pred: torch.Tensor, target: torch.Tensor, tolerance: int = 1) -> float:
    """F1 of boundary pixels: a predicted boundary pixel counts as correct if a true boundary
    pixel lies within ``tolerance`` pixels (chessboard distance), and vice versa for recall.
    Boundaries are pixels whose 4-neighbourhood holds another label. Averaged over the batch."""
    checks.pair(pred, target, "boundary_f1", "integer", ("predictions", "labels"))
    p = pred.reshape(-1, *pred.shape[-2:]).cpu().numpy()
    t = target.reshape(-1, *target.shape[-2:]).cpu().numpy()
    size = 2 * tolerance + 1
    scores = []
    for a, b in zip(p, t):
        ba, bb = _boundary(a), _boundary(b)
        if not ba.any() and not bb.any():
            scores.append(1.0)
            continue
        near_b = ndimage.maximum_filter(bb.astype(np.uint8), size=size) > 0
        near_a = ndimage.maximum_filter(ba.astype(np.uint8), size=size) > 0
        precision = (ba & near_b).sum() / max(ba.sum(), 1)
        recall = (bb & near_a).sum() / max(bb.sum(), 1)
        scores.append(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))
    return float(np.mean(scores))


def _boundary(m: np.ndarray) -> np.ndarray:
    edge = np.zeros(m.shape, bool)
    edge[:-1, :] |= m[:-1, :] != m[1:, :]
    edge[1:, :] |= m[1:, :] != m[:-1, :]
    edge[:, :-1] |= m[:, :-1] != m[:, 1:]
    edge[:, 1:] |= m[:, 1:] != m[:, :-1]
    return edge
