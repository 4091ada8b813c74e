"""Training and prediction loops for per-pixel classifiers.

Taught in chapter 0, section "A short training loop"; the later labs call these so that their
cells hold only the idea being taught. Loops show a tqdm bar and never assume CUDA: everything
moves to the ``device`` passed in (see :func:`course_utils.runtime.get_device`).
"""

from __future__ import annotations

import time
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm


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
    epochs: int,
    device: torch.device,
    lr: float = 1e-3,
    batch_size: int = 32,
    loss_fn: Callable | None = None,
    weight_decay: float = 0.0,
    params=None,
    seed: int = 0,
    progress: bool = True,
    desc: str = "training",
) -> dict:
    """Train ``net`` with Adam on ``data`` (a Dataset of ``(input, target)`` pairs).

    ``loss_fn(scores, targets)`` defaults to :func:`pixel_loss`. ``params`` restricts which
    parameters are trained (for staged training). Returns a history with the mean loss of every
    epoch and the wall time in seconds.
    """
    loss_fn = loss_fn or pixel_loss
    net.to(device).train()
    generator = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True, generator=generator)
    optimizer = torch.optim.Adam(params if params is not None else net.parameters(), lr=lr, weight_decay=weight_decay)
    history = {"loss": []}
    start = time.perf_counter()
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    for _ in bar:
        total, count = 0.0, 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(x), y)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(x)
            count += len(x)
        history["loss"].append(total / max(count, 1))
        bar.set_postfix(loss=f"{history['loss'][-1]:.4f}")
    history["seconds"] = time.perf_counter() - start
    net.eval()
    return history


@torch.no_grad()
def predict(net: torch.nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 64) -> torch.Tensor:
    """Scores of ``net`` on ``images`` ``(N, C, H, W)``, computed in batches, returned on the CPU."""
    if images.dim() != 4:
        raise ValueError(f"predict expects images of shape (N, C, H, W), got {tuple(images.shape)}")
    net.to(device).eval()
    out = [net(images[i:i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.empty(0)


def count_parameters(net: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
