"""Real categorical data that ships with Python: words and letters of Python's own documentation.

Taught in {ref}`sec-smoothing` (chapter 6); lab 6 chooses a Dirichlet prior strength on it by held-out
likelihood.

Two texts come with every CPython installation, so nothing is downloaded:

* :func:`python_docs`: the help topics of the language reference, ``pydoc_data.topics`` (what
  ``help("FOR")`` prints): in Python 3.11, 79 documents and about 465,000 characters of English
  technical prose;
* :func:`zen_of_python`: the 19 aphorisms of ``import this`` (about 680 letters).

:func:`text_counts` tokenizes the help topics into lower-case words (or letters) and splits them
**by document** into training, validation and test parts with a fixed seed, so a held-out document
is about a topic the training documents do not cover, as new text usually is. The ``k`` categories
are the tokens of the training and validation documents, plus one last category, ``<unk>``, for
every test token outside them: the vocabulary is fixed before the test documents are read, as it
would be before new text arrives. A category can have no training occurrence and still occur in
the held-out parts (a validation word, or ``<unk>``): the situation in which a maximum-likelihood
estimate fails.

The exact counts depend on the Python version (the help topics are regenerated with every
release); the split and the tokenization are deterministic for a given version.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import re
from dataclasses import dataclass, field

import numpy as np
import torch

SPLITS = ("train", "valid", "test")
UNITS = ("word", "letter")
_WORD = re.compile(r"[a-z]+")
UNKNOWN = "<unk>"  # the category of a test token that no training or validation document holds


def python_docs() -> dict[str, str]:
    """The help topics of Python's language reference, ``{topic: text}``, sorted by topic name.

    They ship with CPython as ``pydoc_data.topics``; a stripped-down Python without them gets a
    clear error rather than an empty data set.
    """
    try:
        from pydoc_data.topics import topics
    except ImportError as err:  # pragma: no cover - every CPython build we know ships it
        raise RuntimeError(
            "this Python has no pydoc_data.topics (the help texts of the language reference); "
            "install a standard CPython build, which ships it in its standard library"
        ) from err
    return {name: topics[name] for name in sorted(topics)}


def zen_of_python() -> str:
    """The text of ``import this`` (decoded from the module's ROT13 string, without printing it)."""
    with contextlib.redirect_stdout(io.StringIO()):  # the first import prints the poem
        import this
    return codecs.decode(this.s, "rot13")


def tokenize(text: str, unit: str = "word") -> list[str]:
    """Lower-case ``text`` and cut it into words (runs of the letters a-z) or single letters a-z.

    Digits, punctuation and white space are dropped, so ``"Don't panic, 42!"`` gives the words
    ``["don", "t", "panic"]``.
    """
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    words = _WORD.findall(text.lower())
    return words if unit == "word" else [ch for w in words for ch in w]


def count_tokens(tokens: list[str], categories: tuple[str, ...] | list[str]) -> torch.Tensor:
    """How often each of ``categories`` occurs in ``tokens``: an int64 tensor of shape ``(k,)``.

    A token that is not one of the categories is an error (it would be silently lost otherwise).
    """
    index = {c: i for i, c in enumerate(categories)}
    if len(index) != len(categories):
        raise ValueError("categories must be distinct")
    unknown = sorted({t for t in tokens if t not in index})
    if unknown:
        raise ValueError(f"{len(unknown)} tokens are not among the categories, e.g. {unknown[:5]}")
    ids = torch.tensor([index[t] for t in tokens], dtype=torch.int64)
    return torch.bincount(ids, minlength=len(categories))


@dataclass
class TextCounts:
    """A categorical data set cut from the help topics, split by document.

    Attributes (``k`` categories):
        categories: the ``k`` category names: the words (or letters) of the training and validation
            documents, sorted alphabetically, then ``"<unk>"``.
        train, valid, test: int64 count vectors ``(k,)``: how often each category occurs in the
            documents of that split.
        documents: the topic names of each split, ``{"train": [...], "valid": [...], "test": [...]}``.
        unit: ``"word"`` or ``"letter"``.
    """

    categories: tuple[str, ...]
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    documents: dict = field(repr=False)
    unit: str = "word"
    _tokens: dict = field(default_factory=dict, repr=False)

    @property
    def k(self) -> int:
        return len(self.categories)

    def counts(self, split: str) -> torch.Tensor:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return getattr(self, split)

    def tokens(self, split: str) -> torch.Tensor:
        """The tokens of one split in reading order, as category indices (int64, shape ``(n,)``)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return self._tokens[split].clone()

    def unseen(self, split: str = "test") -> torch.Tensor:
        """Boolean mask ``(k,)`` of the categories that occur in ``split`` but never in training."""
        return (self.counts(split) > 0) & (self.train == 0)


def text_counts(unit: str = "word", fractions: tuple[float, float, float] = (0.6, 0.2, 0.2), seed: int = 0) -> TextCounts:
    """Counts of the words (or letters) of Python's help topics, split by document.

    The sorted topic names are shuffled with ``numpy.random.default_rng(seed)`` and cut into
    training, validation and test parts of the given ``fractions`` of the documents (at least one
    document each). The same ``(unit, fractions, seed)`` gives the same counts on every machine
    with the same Python version.
    """
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three positive numbers that sum to 1, got {fractions}")
    docs = python_docs()
    names = list(docs)
    order = np.random.default_rng(seed).permutation(len(names))
    n_train = max(1, int(round(fractions[0] * len(names))))
    n_valid = max(1, int(round(fractions[1] * len(names))))
    if n_train + n_valid >= len(names):
        raise ValueError("the fractions leave no document for the test split")
    parts = {
        "train": [names[i] for i in order[:n_train]],
        "valid": [names[i] for i in order[n_train:n_train + n_valid]],
        "test": [names[i] for i in order[n_train + n_valid:]],
    }
    tokens = {s: [t for name in parts[s] for t in tokenize(docs[name], unit)] for s in SPLITS}
    categories = tuple(sorted({t for s in ("train", "valid") for t in tokens[s]})) + (UNKNOWN,)
    index = {c: i for i, c in enumerate(categories)}
    unknown = index[UNKNOWN]
    ids = {s: torch.tensor([index.get(t, unknown) for t in tokens[s]], dtype=torch.int64) for s in SPLITS}
    counts = {s: torch.bincount(ids[s], minlength=len(categories)) for s in SPLITS}
    return TextCounts(categories=categories, documents=parts, unit=unit, _tokens=ids, **counts)
