"""What the chapters say about their results, checked when the book builds.

Used by every chapter, from {ref}`sec-setup` (chapter 0) on. A sentence that states a result (a
number, an ordering, "the curve rises") either shows a computed value through myst-nb's ``glue``, or
is written next to the code as a :func:`claim`: the sentence, the condition that makes it true, and
the values it rests on. The values are glued for the text to show, and a condition that does not
hold stops the book build (``jupyter-book build -W`` fails on any cell error) with the sentence and
the values, so the page cannot keep saying what its code contradicts. Alt texts and figure titles,
which cannot show a glued value, are claims too.
"""

from __future__ import annotations

import numbers


class ClaimError(AssertionError):
    """A sentence of the book that its computed values contradict."""


def _plain(value):
    """Numbers as Python numbers (tensors and NumPy scalars included), everything else as it is."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return value


def claim(says: str, holds: bool, glue: bool = True, **values):
    """Check that the sentence ``says`` holds for ``values``, and glue each value under its name.

    ``holds`` is the condition that makes the sentence true, computed from the same values, e.g.::

        claim("fine-tuning first falls below simulation alone", tuned[8] < sim_only,
              tuned_8=tuned[8], sim_only=sim_only)

    Returns the values as a dict of plain numbers. Raises :class:`ClaimError` naming the sentence
    and every value when ``holds`` is false.
    """
    if not isinstance(says, str) or not says.strip():
        raise TypeError(f"claim needs the sentence it checks as a string, got {type(says).__name__}")
    if not isinstance(holds, bool) and not (hasattr(holds, "item") and getattr(holds, "ndim", 1) == 0):
        raise TypeError(f"claim({says!r}) needs a condition that is True or False, got {type(holds).__name__}; "
                        "compare the values (a < b, abs(a - b) < tol) rather than passing them")
    plain = {name: _plain(v) for name, v in values.items()}
    if not bool(holds):
        shown = ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v!r}" for k, v in plain.items())
        raise ClaimError(f"the book says {says!r}, but its computed values disagree ({shown or 'no values given'}): "
                         "change the sentence or find out why the result moved")
    if glue and plain:
        from myst_nb import glue as myst_glue

        for name, v in plain.items():
            myst_glue(name, v, display=False)
    return plain
