"""Drawing digit sequences and transition matrices.

Taught in {ref}`sec-cnf` (chapter 1): a few sequences with their true and predicted labels,
corrupted frames outlined; transition matrices as heat maps on one colour scale.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from .masks import PALETTE


def show_digit_sequences(data, n: int = 2, frames: int = 12, predictions: dict | None = None):
    """Draw the first ``frames`` frames of ``n`` sequences, each titled with its true label; corrupted
    frames get an orange frame. ``predictions`` maps a name to an ``(N, T)`` tensor of predicted
    labels, written under each frame (wrong ones in vermilion)."""
    n = min(n, len(data))
    frames = min(frames, data.length)
    predictions = predictions or {}
    for name, p in predictions.items():
        if tuple(p.shape) != tuple(data.labels.shape):
            raise ValueError(f"predictions[{name!r}] must have shape {tuple(data.labels.shape)} like the labels, got {tuple(p.shape)}")
    fig, axes = plt.subplots(n, frames, figsize=(0.72 * frames + 0.3, (1.05 + 0.25 * len(predictions)) * n),
                             squeeze=False, layout="constrained")
    for i in range(n):
        for t in range(frames):
            ax = axes[i, t]
            ax.imshow(data.frames[i, t].numpy(), cmap="gray_r", vmin=-0.2, vmax=1.2)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(str(int(data.labels[i, t])), fontsize=9)
            for spine in ax.spines.values():
                spine.set_edgecolor(PALETTE[1] if data.corrupted[i, t] else "0.7")
                spine.set_linewidth(2.5 if data.corrupted[i, t] else 0.8)
            lines = []
            for name, p in predictions.items():
                lines.append(f"{name[:3]} {int(p[i, t])}")
                if int(p[i, t]) != int(data.labels[i, t]):
                    lines[-1] += " x"
            if lines:
                ax.set_xlabel("\n".join(lines), fontsize=6.5)
        axes[i, 0].set_ylabel(f"seq. {i}", fontsize=8)
    return fig


def plot_transitions(matrices: dict, axes=None, vmax: float | None = None):
    """Heat maps of ``(K, K)`` transition matrices side by side (rows: from, columns: to), with a shared
    colour scale (cividis) and one colour bar."""
    mats = {k: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)) for k, v in matrices.items()}
    for k, m in mats.items():
        if m.ndim != 2 or m.shape[0] != m.shape[1]:
            raise ValueError(f"matrices[{k!r}] must be square (K, K), got shape {m.shape}")
    if axes is None:
        _, axes = plt.subplots(1, len(mats), figsize=(2.9 * len(mats) + 0.8, 3.0), squeeze=False, layout="constrained")
        axes = axes[0]
    vmax = vmax if vmax is not None else max(float(m.max()) for m in mats.values())
    for ax, (name, m) in zip(axes, mats.items()):
        im = ax.imshow(m, cmap="cividis", vmin=0, vmax=vmax)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("next digit")
        ax.set_ylabel("digit")
        ax.set_xticks(range(m.shape[0]))
        ax.set_yticks(range(m.shape[0]))
        ax.tick_params(labelsize=7)
    plt.colorbar(im, ax=list(axes), fraction=0.03)
    return axes
