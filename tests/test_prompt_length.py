"""Prompts longer than the text encoder's 77 tokens: one warning naming what is dropped."""

import logging

import pytest

from gaussianip.prior.prompt_length import dropped_tokens
from gaussianip.prior.tiny import tiny_tokenizer


def _words(n: int) -> str:
    """n different three-letter words ("aaz", "baz", ...): 3 tokens each for the tiny
    tokenizer, which has no merges."""
    return " ".join(chr(97 + i % 26) + chr(97 + i // 26) + "z" for i in range(n))


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()  # a real CLIPTokenizer (one token per character)


def test_dropped_tokens_match_the_tokenizers_own_truncation(tokenizer):
    short = "a photo of a woman"
    assert dropped_tokens(tokenizer, short) == (0, "")
    words = _words(30)  # 90 tokens: 3 per word, no spaces
    n, text = dropped_tokens(tokenizer, words)
    full = tokenizer(words, truncation=False).input_ids
    cut = tokenizer(words, truncation=True, max_length=77).input_ids
    assert len(cut) == 77 and n == len(full) - len(cut) == 90 + 2 - 77
    assert text == _words(30)[-19:] == "zaz abz bbz cbz dbz"  # 15 tokens: the last 5 words


def test_the_prior_warns_once_per_long_prompt(caplog):
    from gaussianip.prior.human_prior import HumanPrior, PriorConfig

    prior = HumanPrior.build(PriorConfig(preset="tiny", ip_adapter=None, controlnet=None))
    long = _words(30)
    with caplog.at_level(logging.WARNING, logger="gaussianip.prior.prompt_length"):
        prior.encode_text([long, "", "short prompt"])
        prior.encode_text([long])
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 1
    assert "is 92 tokens long; the text encoder reads 77" in notes[0]
    assert "the last 15 are dropped: 'zaz abz bbz cbz dbz'" in notes[0]
