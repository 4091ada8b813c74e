"""Claims: a sentence of the book and the condition that makes it true, checked at build."""

import numpy as np
import pytest
import torch

from course_utils.claims import ClaimError, claim


def test_a_claim_that_holds_returns_its_values_as_plain_numbers():
    values = claim("FCN-8s beats FCN-32s", torch.tensor(0.6) > 0.4, glue=False,
                   miu_8=torch.tensor(0.6), miu_32=np.float32(0.4), scenes=np.int64(8))
    assert values == {"miu_8": pytest.approx(0.6), "miu_32": pytest.approx(0.4), "scenes": 8}
    assert type(values["miu_8"]) is float and type(values["scenes"]) is int


def test_a_contradicted_claim_stops_with_the_sentence_and_the_values():
    with pytest.raises(ClaimError, match=r"the book says 'fine-tuning closes the gap', but .*tuned = 0\.257, real = 0\.268"):
        claim("fine-tuning closes the gap", 0.257 >= 0.268, glue=False, tuned=0.257, real=0.268)


def test_a_claim_needs_a_sentence_and_a_condition():
    with pytest.raises(TypeError, match="sentence"):
        claim("", True)
    with pytest.raises(TypeError, match="True or False"):
        claim("the loss falls", [0.3, 0.2])


def test_a_claim_glues_its_values_for_the_text(monkeypatch):
    import myst_nb

    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display: glued.update({name: value}))
    claim("the curve rises", True, first=np.float64(0.1), last=0.9)
    assert glued == {"first": 0.1, "last": 0.9}
