"""Windows around pixels: training data for a patch classifier, and the sliding-window labeler.

Taught in {ref}`sec-sliding-window` (chapter 2). A *patch classifier* looks at the
``P x P`` window centred on a pixel (``P`` odd, so the centre is a pixel) and predicts that
pixel's class. Near the border the window runs off the image; we pad the image with zeros, so a
window exists for every pixel. Images of the course are standardised, so zero is "average grey".

* :func:`extract_windows` cuts the window around every pixel of a batch of images;
* :func:`sample_windows` draws a training set of (window, centre label) pairs from labelled scenes;
* :func:`sliding_window_scores` labels every pixel of an image by classifying its window, either one
  window per forward pass (the literal algorithm) or many windows per pass;

The lab of chapter 2 turns the patch classifier into a fully-convolutional network that gives the
same scores in one pass; that conversion is the student's and is not here.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .. import checks


def check_window(window) -> int:
    """Return ``window`` as an int, or raise if it is not a positive odd integer."""
    if isinstance(window, bool) or not isinstance(window, int) or window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd integer (the centre must be a pixel), got {window!r}")
    return window


def pad_for_window(images: torch.Tensor, window: int) -> torch.Tensor:
    """Zero-pad ``(N, C, H, W)`` images by ``window // 2`` on every side."""
    r = check_window(window) // 2
    return F.pad(images, (r, r, r, r))


def extract_windows(images: torch.Tensor, window: int) -> torch.Tensor:
    """The ``window x window`` patch centred on every pixel: ``(N * H * W, C, P, P)``.

    Windows come in the order of the pixels, image by image and row by row, so
    ``out.view(N, H, W, C, P, P)[n, i, j]`` is the window centred on pixel ``(i, j)`` of image ``n``.
    """
    checks.images(images, "extract_windows")
    P = check_window(window)
    N, C, H, W = images.shape
    cols = F.unfold(pad_for_window(images, P), P)  # (N, C*P*P, H*W)
    return cols.transpose(1, 2).reshape(N * H * W, C, P, P)


def windows_at(images: torch.Tensor, window: int, index: torch.Tensor) -> torch.Tensor:
    """The windows centred on the pixels ``index`` (an int tensor ``(M, 3)`` of (image, row, col)):
    ``(M, C, P, P)``."""
    checks.images(images, "windows_at")
    P = check_window(window)
    if index.dim() != 2 or index.shape[1] != 3 or index.dtype.is_floating_point:
        raise ValueError(f"index must be an integer tensor (M, 3) of (image, row, col), got {tuple(index.shape)} {index.dtype}")
    N, C, H, W = images.shape
    n, i, j = index.long().T
    if len(n) and (n.min() < 0 or n.max() >= N or i.min() < 0 or i.max() >= H or j.min() < 0 or j.max() >= W):
        raise ValueError(f"index points outside the images of shape (N, H, W) = ({N}, {H}, {W})")
    padded = pad_for_window(images, P)
    offsets = torch.arange(P)
    rows = (i[:, None] + offsets)[:, :, None]  # (M, P, 1): padded row of each window row
    cols = (j[:, None] + offsets)[:, None, :]  # (M, 1, P)
    # advanced indexing over (image, row, col) puts the channel axis last; move it back
    return padded[n[:, None, None], :, rows, cols].permute(0, 3, 1, 2).contiguous()


def sample_windows(
    images: torch.Tensor,
    labels: torch.Tensor,
    window: int,
    count: int,
    seed: int = 0,
    foreground: float | None = 0.5,
) -> torch.utils.data.TensorDataset:
    """A training set of ``count`` (window, label of its centre pixel) pairs from labelled scenes.

    ``images`` ``(N, C, H, W)``, ``labels`` ``(N, H, W)`` with 0 for background. With
    ``foreground = f`` a fraction ``f`` of the windows is centred on object pixels and the rest on
    background pixels, both drawn uniformly with replacement; with ``foreground=None`` every pixel
    is equally likely (about 85% background on digit scenes). Deterministic given ``seed``.
    """
    checks.images(images, "sample_windows")
    if labels.shape != (images.shape[0], *images.shape[2:]) or labels.dtype.is_floating_point:
        raise ValueError(f"labels must be integers of shape (N, H, W) = {(images.shape[0], *images.shape[2:])}, "
                         f"got {tuple(labels.shape)} {labels.dtype}")
    if count < 1:
        raise ValueError(f"count must be positive, got {count}")
    g = torch.Generator().manual_seed(seed)
    if foreground is None:
        pixels = torch.nonzero(torch.ones_like(labels, dtype=torch.bool))
        index = pixels[torch.randint(len(pixels), (count,), generator=g)]
    else:
        if not 0.0 <= foreground <= 1.0:
            raise ValueError(f"foreground must be a fraction in [0, 1] or None, got {foreground}")
        fg, bg = torch.nonzero(labels > 0), torch.nonzero(labels == 0)
        n_fg = int(round(foreground * count))
        if (n_fg and not len(fg)) or (count - n_fg and not len(bg)):
            raise ValueError("the labels hold no object pixels or no background pixels to sample from")
        index = torch.cat([fg[torch.randint(max(len(fg), 1), (n_fg,), generator=g)],
                           bg[torch.randint(max(len(bg), 1), (count - n_fg,), generator=g)]])
        index = index[torch.randperm(count, generator=g)]
    windows = windows_at(images, window, index)
    centre_labels = labels[index[:, 0], index[:, 1], index[:, 2]]
    return torch.utils.data.TensorDataset(windows, centre_labels)


@torch.no_grad()
def sliding_window_scores(
    net: torch.nn.Module,
    images: torch.Tensor,
    window: int,
    batch_size: int | None = 1024,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Label every pixel by running the patch classifier ``net`` on the window around it.

    ``net`` maps windows ``(B, C, P, P)`` to scores ``(B, K)``; the result is ``(N, K, H, W)``.
    ``batch_size=1`` is the literal algorithm, one forward pass per pixel (a Python loop over
    pixels); a larger ``batch_size`` classifies that many windows per pass, which hides Python's
    per-call overhead but still repeats the arithmetic of overlapping windows.
    """
    checks.images(images, "sliding_window_scores")
    P = check_window(window)
    if device is None:
        first = next(iter(net.parameters()), None)
        device = first.device if first is not None else images.device
    device = torch.device(device)
    N, C, H, W = images.shape
    images = images.to(device)
    if batch_size == 1:
        padded = pad_for_window(images, P)
        out = None
        for n in range(N):
            for i in range(H):
                for j in range(W):
                    s = net(padded[n:n + 1, :, i:i + P, j:j + P])
                    if out is None:
                        out = torch.empty(N, s.shape[1], H, W, dtype=s.dtype, device=device)
                    out[n, :, i, j] = s[0]
        return out.cpu()
    if batch_size is None or batch_size < 1:
        batch_size = H * W
    scores = []
    for n in range(N):  # one image at a time keeps the windows of one image in memory, not all
        windows = extract_windows(images[n:n + 1], P)
        s = torch.cat([net(windows[k:k + batch_size]) for k in range(0, len(windows), batch_size)])
        scores.append(s.T.reshape(-1, H, W))
    return torch.stack(scores).cpu()
