"""The text data of chapter 6 (Python's own help topics) against collections.Counter and re."""

import collections
import re

import pytest
import torch

from course_utils.data.text_counts import count_tokens, python_docs, text_counts, tokenize, zen_of_python


def test_help_topics_ship_with_python_and_are_real_text():
    docs = python_docs()
    assert len(docs) > 50, "pydoc_data.topics should hold the language reference's help topics"
    assert list(docs) == sorted(docs)
    assert sum(len(t) for t in docs.values()) > 100_000


def test_zen_of_python_is_decoded_without_printing(capsys):
    zen = zen_of_python()
    assert zen.startswith("The Zen of Python")
    assert "Beautiful is better than ugly." in zen
    assert capsys.readouterr().out == ""


def test_tokenize_keeps_lower_case_letter_runs_only():
    assert tokenize("Don't panic, 42!") == ["don", "t", "panic"]
    assert tokenize("Ab c", unit="letter") == ["a", "b", "c"]
    with pytest.raises(ValueError, match="unit"):
        tokenize("x", unit="sentence")


@pytest.mark.parametrize("unit", ["word", "letter"])
def test_split_counts_match_collections_counter_of_the_split_documents(unit):
    data = text_counts(unit, seed=0)
    docs = python_docs()
    pattern = r"[a-z]" if unit == "letter" else r"[a-z]+"
    raw = {split: collections.Counter(t for name in data.documents[split] for t in re.findall(pattern, docs[name].lower()))
           for split in ("train", "valid", "test")}
    vocabulary = set(raw["train"]) | set(raw["valid"])
    assert data.categories == (*sorted(vocabulary), "<unk>"), "the training and validation tokens, then <unk>"
    for split in ("train", "valid", "test"):
        ref = collections.Counter({t: n for t, n in raw[split].items() if t in vocabulary})
        outside = sum(n for t, n in raw[split].items() if t not in vocabulary)
        if outside:
            ref["<unk>"] = outside
        counts = data.counts(split)
        assert counts.dtype == torch.int64 and counts.shape == (data.k,)
        assert {c: int(counts[i]) for i, c in enumerate(data.categories) if counts[i] > 0} == dict(ref)
        assert torch.equal(torch.bincount(data.tokens(split), minlength=data.k), counts)


def test_split_is_by_document_deterministic_and_covers_the_corpus():
    a, b = text_counts("word", seed=0), text_counts("word", seed=0)
    assert a.categories == b.categories and all(torch.equal(a.counts(s), b.counts(s)) for s in ("train", "valid", "test"))
    names = [n for s in ("train", "valid", "test") for n in a.documents[s]]
    assert sorted(names) == list(python_docs()) and len(set(names)) == len(names)
    assert len(a.documents["train"]) == round(0.6 * len(names))
    c = text_counts("word", seed=1)
    assert c.documents["train"] != a.documents["train"], "another seed should give another split"
    assert list(a.categories[:-1]) == sorted(a.categories[:-1]) and a.categories[-1] == "<unk>"
    assert int((a.train + a.valid)[:-1].min()) >= 1, "every word of the vocabulary occurs in training or validation"
    assert int(a.train[-1]) == int(a.valid[-1]) == 0 < int(a.test[-1]), "only test tokens can be <unk>, and some are"


def test_held_out_words_include_words_never_seen_in_training():
    data = text_counts("word")
    unseen = data.unseen("valid")
    assert unseen.any() and torch.equal(unseen, (data.valid > 0) & (data.train == 0))
    assert not text_counts("letter").unseen("test").any(), "all 26 letters occur in the training documents"


def test_count_tokens_matches_counter_and_rejects_unknown_tokens():
    tokens = tokenize(zen_of_python(), "letter")
    cats = tuple("abcdefghijklmnopqrstuvwxyz")
    counts = count_tokens(tokens, cats)
    ref = collections.Counter(tokens)
    assert counts.tolist() == [ref.get(c, 0) for c in cats]
    assert counts[cats.index("j")] == 0 and counts[cats.index("q")] == 0, "the Zen has no j and no q"
    with pytest.raises(ValueError, match="not among the categories"):
        count_tokens(["a", "7"], cats)


def test_bad_arguments_get_clear_errors():
    with pytest.raises(ValueError, match="fractions"):
        text_counts(fractions=(0.5, 0.5, 0.0))
    with pytest.raises(ValueError, match="split"):
        text_counts("letter").counts("dev")
