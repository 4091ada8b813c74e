"""Tests of course_utils.data.digit_sequences: the Markov chain, the split, corruption, determinism."""

import numpy as np
import pytest
import torch
from scipy import stats

from course_utils.data.digit_scenes import digit_split, handwritten_glyphs
from course_utils.data.digit_sequences import (
    DigitSequences,
    corrupt_frame,
    default_transition,
    digit_sequences,
    sample_markov_chain,
)


def test_default_transition_is_row_stochastic_banded_and_has_a_uniform_stationary_distribution():
    P = default_transition()
    assert P.shape == (10, 10)
    np.testing.assert_allclose(P.sum(1), 1.0, atol=1e-12)
    assert (P > 0).all()
    assert all(P[i].argmax() == (i + 1) % 10 for i in range(10))
    # the stationary distribution is the left eigenvector of eigenvalue 1 (scipy's eigensolver)
    from scipy.linalg import eig

    w, vl = eig(P, left=True, right=False)
    pi = np.real(vl[:, np.argmin(abs(w - 1))])
    np.testing.assert_allclose(pi / pi.sum(), np.full(10, 0.1), atol=1e-10)


def test_sampled_chain_has_the_right_transition_frequencies_by_a_chi_square_test():
    P = default_transition()
    labels = sample_markov_chain(P, np.full(10, 0.1), n=2000, length=40, rng=np.random.default_rng(0))
    assert labels.shape == (2000, 40) and labels.dtype == np.int64
    counts = np.zeros((10, 10))
    np.add.at(counts, (labels[:, :-1].ravel(), labels[:, 1:].ravel()), 1)
    for i in range(10):  # each row of counts against its row of P, with scipy's chi-square test
        p_value = stats.chisquare(counts[i], counts[i].sum() * P[i]).pvalue
        assert p_value > 1e-4, f"row {i}: transition counts do not follow P (p = {p_value:.2g})"
    first = np.bincount(labels[:, 0], minlength=10)
    assert stats.chisquare(first, np.full(10, 200.0)).pvalue > 1e-4


def test_sample_markov_chain_follows_a_deterministic_chain_and_rejects_bad_matrices():
    P = np.roll(np.eye(4), 1, axis=1)  # i -> i + 1 always
    labels = sample_markov_chain(P, np.array([0, 0, 1.0, 0]), 3, 6, np.random.default_rng(1))
    np.testing.assert_array_equal(labels, np.tile([2, 3, 0, 1, 2, 3], (3, 1)))
    with pytest.raises(ValueError, match="square"):
        sample_markov_chain(np.ones((3, 4)) / 4, np.ones(3) / 3, 2, 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="probability"):
        sample_markov_chain(np.ones((3, 3)), np.ones(3) / 3, 2, 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="initial"):
        sample_markov_chain(np.ones((3, 3)) / 3, np.ones(4) / 4, 2, 2, np.random.default_rng(0))


def test_digit_sequences_shapes_dtypes_and_determinism():
    a = digit_sequences(12, 9, "train", seed=3)
    b = digit_sequences(12, 9, "train", seed=3)
    c = digit_sequences(12, 9, "train", seed=4)
    assert isinstance(a, DigitSequences) and len(a) == 12 and a.length == 9 and a.num_classes == 10
    assert a.frames.shape == (12, 9, 8, 8) and a.frames.dtype == torch.float32
    assert a.labels.shape == (12, 9) and a.labels.dtype == torch.int64
    assert a.corrupted.dtype == torch.bool and a.sources.dtype == torch.int64
    assert torch.equal(a.frames, b.frames) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.labels, c.labels)
    frames, labels = a[2]
    assert torch.equal(frames, a.frames[2]) and torch.equal(labels, a.labels[2])


def test_frames_are_scans_of_their_label_from_the_right_split():
    from sklearn.datasets import load_digits

    bank = load_digits()
    for split in ("train", "test"):
        data = digit_sequences(30, 15, split, seed=0, corrupt=0.0, noise=0.0)
        allowed = set(digit_split(split).tolist())
        assert set(data.sources.flatten().tolist()) <= allowed, f"{split} sequences use scans of the other split"
        np.testing.assert_array_equal(bank.target[data.sources.numpy()], data.labels.numpy())
        np.testing.assert_allclose(data.frames.numpy(), bank.images[data.sources.numpy()] / 16.0, atol=1e-6)
    train = digit_sequences(50, 10, "train", seed=0)
    test = digit_sequences(50, 10, "test", seed=0)
    assert not set(train.sources.flatten().tolist()) & set(test.sources.flatten().tolist())


def test_corruption_rate_and_what_a_corrupted_frame_keeps():
    data = digit_sequences(400, 20, "train", seed=1, corrupt=0.3)
    rate = float(data.corrupted.float().mean())
    assert abs(rate - 0.3) < 0.02, f"about 30% of the frames should be corrupted, got {rate:.3f}"
    assert not digit_sequences(10, 5, corrupt=0.0).corrupted.any()
    assert digit_sequences(10, 5, corrupt=1.0).corrupted.all()
    glyph = np.arange(64, dtype=np.float64).reshape(8, 8)
    out = corrupt_frame(glyph, np.random.default_rng(0), keep_rows=3, noise=0.0)
    kept_rows = [r for r in range(8) if np.array_equal(out[r], glyph[r])]
    kept_cols = [c for c in range(8) if np.array_equal(out[:, c], glyph[:, c])]
    assert (len(kept_rows) == 3 and (out[[r for r in range(8) if r not in kept_rows]] == 0).all()) or (
        len(kept_cols) == 3 and (out[:, [c for c in range(8) if c not in kept_cols]] == 0).all())


def test_empirical_transition_of_long_sequences_approaches_the_true_matrix():
    data = digit_sequences(300, 60, "train", seed=2)
    est = data.empirical_transition()
    torch.testing.assert_close(est, data.transition, rtol=0, atol=0.04)
    torch.testing.assert_close(data.transition.sum(1), torch.ones(10, dtype=torch.float64))


def test_a_custom_chain_and_argument_checks():
    P = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    data = digit_sequences(5, 7, transition=P, initial=np.array([1.0, 0, 0]))
    assert data.num_classes == 3
    assert torch.equal(data.labels, torch.tensor([0, 1, 2, 0, 1, 2, 0]).repeat(5, 1))
    with pytest.raises(ValueError, match="fraction"):
        digit_sequences(2, 3, corrupt=1.5)
    with pytest.raises(ValueError, match="non-negative"):
        digit_sequences(-1, 3)
    with pytest.raises(ValueError, match="only 10"):
        digit_sequences(2, 3, transition=np.full((11, 11), 1 / 11))
