"""Digit sequences: a sequence-labeling data set whose labels follow a known Markov chain.

Taught in {ref}`sec-digit-sequences` (chapter 1), and used by lab 1 to train a network
alone and the same network inside a chain-structured CRF (a conditional neural field).

Each sequence is ``T`` frames. The labels :math:`y_1, \\dots, y_T` are a Markov chain over the ten
digit classes with a known initial distribution :math:`\\pi` and a known transition matrix
:math:`P` (:math:`P_{ij} = p(y_{t+1} = j \\mid y_t = i)`), and frame :math:`t` is one of
scikit-learn's real handwritten scans of digit :math:`y_t` (8x8 pixels, ink in [0, 1]), drawn at
random from one split. A fraction of the frames is *corrupted*: most of the scan is erased and
heavy noise is added, so that a classifier that looks at one frame at a time often cannot read it,
while the neighbouring frames and the transition structure still say a lot about its label.

The train/test split is by source digit (:func:`course_utils.data.digit_split`): test sequences
are made only of scans that no training sequence contains. Everything is a function of the seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .digit_scenes import digit_split, handwritten_glyphs

NUM_DIGITS = 10


def default_transition(num_classes: int = NUM_DIGITS) -> np.ndarray:
    """The course's default transition matrix ``(K, K)``, rows summing to one.

    A circulant chain: from digit ``i`` the next digit is ``i + 1`` with probability 0.55,
    ``i + 3`` with 0.2, ``i`` again with 0.1, and any of the other classes with the remaining
    0.15 shared equally (all modulo ``K``). Every transition is possible, but the matrix has a
    clear banded structure that a learned CRF can be compared with, and its stationary
    distribution is uniform.
    """
    if num_classes < 4:
        raise ValueError(f"the default transition matrix needs at least 4 classes, got {num_classes}")
    K = num_classes
    rest = 0.15 / (K - 3)
    P = np.full((K, K), rest)
    for i in range(K):
        P[i, (i + 1) % K] = 0.55
        P[i, (i + 3) % K] = 0.2
        P[i, i] = 0.1
    return P


def _check_stochastic(P: np.ndarray, pi: np.ndarray) -> None:
    if P.ndim != 2 or P.shape[0] != P.shape[1]:
        raise ValueError(f"the transition matrix must be square (K, K), got shape {P.shape}")
    if pi.shape != (P.shape[0],):
        raise ValueError(f"the initial distribution must have shape ({P.shape[0]},), got {pi.shape}")
    if (P < 0).any() or not np.allclose(P.sum(1), 1.0, atol=1e-8):
        raise ValueError("every row of the transition matrix must be a probability distribution (non-negative, sum 1)")
    if (pi < 0).any() or not np.isclose(pi.sum(), 1.0, atol=1e-8):
        raise ValueError("the initial distribution must be non-negative and sum to 1")


def sample_markov_chain(
    transition: np.ndarray, initial: np.ndarray, n: int, length: int, rng: np.random.Generator
) -> np.ndarray:
    """``n`` label sequences of ``length`` steps, shape ``(n, length)``, from a Markov chain.

    ``y_1 ~ initial`` and ``y_{t+1} | y_t = i ~ transition[i]``; sampled by inverting the
    cumulative distribution of every row, all ``n`` chains at once.
    """
    P = np.asarray(transition, dtype=np.float64)
    pi = np.asarray(initial, dtype=np.float64)
    _check_stochastic(P, pi)
    if n < 0 or length < 1:
        raise ValueError(f"need n >= 0 sequences of length >= 1, got n={n}, length={length}")
    K = P.shape[0]
    cum_pi = np.cumsum(pi)
    cum_P = np.cumsum(P, axis=1)
    labels = np.empty((n, length), dtype=np.int64)
    u = rng.random((n, length))
    labels[:, 0] = np.minimum(np.searchsorted(cum_pi, u[:, 0], side="right"), K - 1)
    for t in range(1, length):
        rows = cum_P[labels[:, t - 1]]  # (n, K): the cumulative distribution of each chain's next step
        labels[:, t] = np.minimum((rows <= u[:, t, None]).sum(1), K - 1)
    return labels


def corrupt_frame(glyph: np.ndarray, rng: np.random.Generator, keep_rows: int = 3, noise: float = 0.35) -> np.ndarray:
    """Erase all but a random band of ``keep_rows`` rows (or columns) of an 8x8 scan and add noise.

    What is left is a sliver of the stroke, often compatible with several digits.
    """
    out = np.zeros_like(glyph)
    h, w = glyph.shape
    if rng.random() < 0.5:
        r = int(rng.integers(0, h - keep_rows + 1))
        out[r:r + keep_rows] = glyph[r:r + keep_rows]
    else:
        c = int(rng.integers(0, w - keep_rows + 1))
        out[:, c:c + keep_rows] = glyph[:, c:c + keep_rows]
    return out + rng.normal(0.0, noise, glyph.shape)


@dataclass
class DigitSequences(torch.utils.data.Dataset):
    """``N`` sequences of ``T`` frames. Indexing gives ``(frames, labels)`` pairs for a DataLoader.

    Attributes:
        frames: float32 tensor ``(N, T, 8, 8)``: the scans (ink in [0, 1] plus noise).
        labels: int64 tensor ``(N, T)``: the digit of every frame.
        corrupted: bool tensor ``(N, T)``: which frames were corrupted.
        sources: int64 tensor ``(N, T)``: the index of every frame's scan in scikit-learn's bank.
        transition: float64 tensor ``(K, K)``: the true transition matrix :math:`P`.
        initial: float64 tensor ``(K,)``: the true initial distribution :math:`\\pi`.
    """

    frames: torch.Tensor
    labels: torch.Tensor
    corrupted: torch.Tensor
    sources: torch.Tensor
    transition: torch.Tensor
    initial: torch.Tensor

    @property
    def num_classes(self) -> int:
        return self.transition.shape[0]

    @property
    def length(self) -> int:
        return self.labels.shape[1]

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, i):
        return self.frames[i], self.labels[i]

    def empirical_transition(self) -> torch.Tensor:
        """Transition frequencies counted in the labels, ``(K, K)``, rows normalised (zero rows stay zero)."""
        K = self.num_classes
        pairs = self.labels[:, :-1] * K + self.labels[:, 1:]
        counts = torch.bincount(pairs.flatten(), minlength=K * K).reshape(K, K).double()
        return counts / counts.sum(1, keepdim=True).clamp_min(1)


def digit_sequences(
    n: int,
    length: int = 20,
    split: str = "train",
    seed: int = 0,
    corrupt: float = 0.3,
    transition: np.ndarray | None = None,
    initial: np.ndarray | None = None,
    noise: float = 0.1,
) -> DigitSequences:
    """``n`` sequences of ``length`` handwritten digits from one split ("train" or "test").

    The labels follow the Markov chain ``(initial, transition)`` (default: uniform start and
    :func:`default_transition`); each frame is a random scan of its digit from ``split``, with
    Gaussian ``noise``; a fraction ``corrupt`` of the frames, chosen at random, goes through
    :func:`corrupt_frame`. The same arguments give the same arrays on every machine.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    if not 0.0 <= corrupt <= 1.0:
        raise ValueError(f"corrupt is a fraction of frames in [0, 1], got {corrupt}")
    P = default_transition() if transition is None else np.asarray(transition, dtype=np.float64)
    K = P.shape[0] if P.ndim == 2 else 0
    pi = np.full(K, 1.0 / max(K, 1)) if initial is None else np.asarray(initial, dtype=np.float64)
    _check_stochastic(P, pi)
    if K > NUM_DIGITS:
        raise ValueError(f"there are only {NUM_DIGITS} digit classes, but the transition matrix has {K}")
    glyphs, classes = handwritten_glyphs(split)
    index = digit_split(split)
    by_class = [np.flatnonzero(classes == k) for k in range(K)]
    # train and test use different streams even with the same seed
    rng = np.random.default_rng([seed, 1 if split == "test" else 0, 541])
    labels = sample_markov_chain(P, pi, n, length, rng)
    pick = np.empty_like(labels)
    for k in range(K):
        where = labels == k
        pick[where] = rng.choice(by_class[k], size=int(where.sum()))
    frames = glyphs[pick] + rng.normal(0.0, noise, (n, length, 8, 8))
    corrupted = rng.random((n, length)) < corrupt
    for i, t in zip(*np.nonzero(corrupted)):
        frames[i, t] = corrupt_frame(glyphs[pick[i, t]], rng)
    return DigitSequences(
        frames=torch.from_numpy(frames.astype(np.float32)),
        labels=torch.from_numpy(labels),
        corrupted=torch.from_numpy(corrupted),
        sources=torch.from_numpy(index[pick]),
        transition=torch.from_numpy(P.copy()),
        initial=torch.from_numpy(pi.copy()),
    )
