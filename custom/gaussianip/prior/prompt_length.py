"""Prompts longer than the text encoder reads: say so, once, instead of cutting silently
(for the user's own prompts: the negative prompts we ship are cut as the reference cuts
them, without a word each run).

CLIP's text encoder reads ``model_max_length`` tokens (77 for SD 1.5) including its start
and end tokens; the tokenizer drops the rest of a longer prompt without a word.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

# Prompts we ship (the reference's negative prompts): cut like the reference cuts them,
# which the README says once; a user cannot act on a warning about them.
SHIPPED_PROMPTS: set[str] = set()


def shipped_prompt(text: str) -> str:
    """Mark ``text`` as a prompt we ship (no length warning); returns it."""
    SHIPPED_PROMPTS.add(text)
    return text


def dropped_tokens(tokenizer: Any, prompt: str) -> tuple[int, str]:
    """How many tokens of ``prompt`` the text encoder does not see, and their text."""
    tokens = tokenizer.tokenize(prompt)  # no special tokens, and no length warning
    room = tokenizer.model_max_length - 2  # start and end tokens
    if len(tokens) <= room:
        return 0, ""
    return len(tokens) - room, tokenizer.convert_tokens_to_string(tokens[room:]).strip()


class PromptLengthCheck:
    """``check(prompts)`` logs one warning per prompt that is too long (per instance)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._warned: set[str] = set()

    def check(self, prompts: list[str]) -> None:
        for prompt in prompts:
            if prompt in self._warned or prompt in SHIPPED_PROMPTS:
                continue
            n, text = dropped_tokens(self.tokenizer, prompt)
            if n:
                self._warned.add(prompt)
                limit = self.tokenizer.model_max_length
                log.warning(
                    "The prompt '%s' is %d tokens long; the text encoder reads %d (with its "
                    "start and end tokens), so the last %d are dropped: '%s'. Shorten the prompt "
                    "to keep them.", _short(prompt), n + limit, limit, n, _short(text)
                )  # fmt: skip


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
