"""Training and prediction loops for per-pixel classifiers.

Taught in {ref}`sec-training-loop` (chapter 0); the later labs call these so that their
cells hold only the idea being taught. Loops show a tqdm bar and never assume CUDA: everything
moves to the ``device`` passed in (see :func:`course_utils.runtime.get_device`).
"""

from __future__ import annotations

import math
import time
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import checks


def pixel_loss(scores: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Mean per-pixel cross-entropy of scores ``(N, C, H, W)`` against labels ``(N, H, W)``."""
    if scores.dim() != labels.dim() + 1:
        raise ValueError(
            f"scores must have one more dimension (classes) than labels: got scores {tuple(scores.shape)} "
            f"and labels {tuple(labels.shape)}"
        )
    if scores.shape[2:] != labels.shape[1:]:
        raise ValueError(
            f"scores cover {tuple(scores.shape[2:])} pixels but labels cover {tuple(labels.shape[1:])}; "
            "did the network forget to upsample back to the image size?"
        )
    return F.cross_entropy(scores, labels, ignore_index=ignore_index)


def fit(
    net: torch.nn.Module,
    data,
    epochs: int | None = None,
    device: torch.device | str = "cpu",
    lr: float = 1e-3,
    batch_size: int = 32,
    loss_fn: Callable | None = None,
    weight_decay: float = 0.0,
    params=None,
    seed: int = 0,
    progress: bool = True,
    desc: str = "training",
    max_steps: int | None = None,
) -> dict:
    """Train ``net`` with Adam on ``data`` (a Dataset of ``(input, target)`` pairs) for ``epochs``
    passes over the data, or for exactly ``max_steps`` optimizer steps (the loader starts again
    when it runs out: a few scenes give a short epoch).

    ``loss_fn(scores, targets)`` defaults to :func:`pixel_loss`. ``params`` restricts which
    parameters are trained (for staged training). Returns a history with the mean loss of every
    epoch (of every pass, with ``max_steps``), the number of steps and the wall time in seconds.
    """
    checks.module(net, "fit")
    checks.dataset(data, "fit")
    if (epochs is None) == (max_steps is None):
        raise ValueError(f"fit trains for a number of epochs or of max_steps: give exactly one, got epochs={epochs!r}, "
                         f"max_steps={max_steps!r}")
    epochs = checks.integer(epochs, "epochs", low=0) if epochs is not None else None
    max_steps = checks.integer(max_steps, "max_steps", low=0) if max_steps is not None else None
    loss_fn = loss_fn or pixel_loss
    device = checks.device(device, "fit")
    net.to(device).train()
    generator = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True, generator=generator)
    optimizer = torch.optim.Adam(params if params is not None else net.parameters(), lr=lr, weight_decay=weight_decay)
    history = {"loss": [], "steps": 0}
    passes = epochs if max_steps is None else (math.ceil(max_steps / len(loader)) if len(loader) and max_steps else 0)
    start = time.perf_counter()
    bar = tqdm(range(passes), desc=desc, disable=not progress, leave=False)
    for _ in bar:
        total, count = 0.0, 0
        for x, y in loader:
            if max_steps is not None and history["steps"] == max_steps:
                break
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = checks.loss(loss_fn(_scores(net, x, y), y), "loss_fn")
            loss.backward()
            optimizer.step()
            history["steps"] += 1
            total += float(loss.detach()) * len(x)
            count += len(x)
        history["loss"].append(total / max(count, 1))
        bar.set_postfix(loss=f"{history['loss'][-1]:.4f}")
    history["seconds"] = time.perf_counter() - start
    net.eval()
    return history


IGNORED = (255, -100)  # the labels the course's losses skip (ignore_index)


def _scores(net, x, y):
    out = net(x)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the network returned {checks.describe(out)}, not a tensor of scores: does its forward() "
                        "end with a return?")
    if out.dim() == 4 and y.dim() == 3 and out.shape[-2:] != y.shape[-2:]:
        raise ValueError(f"the network returned scores of shape {tuple(out.shape)} for labels of shape {tuple(y.shape)}: "
                         "did the network forget to upsample back to the image size?")
    if out.dim() == y.dim() + 1 and not y.dtype.is_floating_point:
        if y.dtype != torch.int64:
            raise TypeError(f"the labels are {checks.describe(y)}; the losses take class indices as int64 "
                            "(torch.long): convert them with labels.long()")
        used = y[~torch.isin(y, torch.tensor(IGNORED, device=y.device))]
        if used.numel() and int(used.max()) >= out.shape[1]:
            raise ValueError(f"the labels go up to class {int(used.max())} but the network scores only {out.shape[1]} "
                             f"classes (scores {tuple(out.shape)}); give its last layer one output per class, at least "
                             f"{int(used.max()) + 1} (num_classes)")
    return out


@torch.no_grad()
def predict(net: torch.nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 64) -> torch.Tensor:
    """Scores of ``net`` on ``images`` ``(N, C, H, W)``, computed in batches, returned on the CPU."""
    checks.module(net, "predict")
    checks.images(images, "predict")
    device = checks.device(device, "predict")
    net.to(device).eval()
    out = [net(images[i:i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.empty(0)


def count_parameters(net: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
