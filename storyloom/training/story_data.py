"""Summary/story pairs for the story LoRA: read and checked, split, and tokenized in the storyteller template.

The prompt half of each example is exactly what the story writer sends at inference (``story_request`` with
the ``storyteller`` format), tokenized the same way, so the adapter learns to continue the very token sequence
it will be given. Only the answer (the story, then ``END`` and the end-of-sequence token) is scored: its labels
are the tokens, the prompt's are ``-100``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from storyloom.errors import InvalidInput
from storyloom.models.story.prompts import STORYTELLER_STOP, STORYTELLER_TEMPLATE

T = TypeVar("T")

IGNORE_INDEX = -100  # the label value torch's cross-entropy skips
# An example must leave at least this many tokens of story after its prompt to teach anything.
MIN_ANSWER_TOKENS = 8
MAX_DATASET_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class StoryPair:
    summary: str
    story: str


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]

    @property
    def scored_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def load_story_pairs(path: Path) -> list[StoryPair]:
    """The pairs of ``path`` (a JSON list of ``{"summary": ..., "story": ...}``), or one ``InvalidInput`` line
    naming the file, the pair and what is wrong with it."""
    name = path.name
    if not path.is_file():
        raise InvalidInput(f"the dataset {path} does not exist")
    if path.stat().st_size > MAX_DATASET_BYTES:
        raise InvalidInput(f"the dataset {name} is larger than {MAX_DATASET_BYTES // 1024 // 1024} MiB")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise InvalidInput(f"the dataset {name} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"the dataset {name} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    if not isinstance(data, list):
        raise InvalidInput(f'the dataset {name} must be a JSON list of {{"summary": ..., "story": ...}} objects')
    if not data:
        raise InvalidInput(f"the dataset {name} is empty; it needs at least one summary/story pair")
    return [_pair(item, number, name) for number, item in enumerate(data, start=1)]


def _pair(item: Any, number: int, name: str) -> StoryPair:
    if not isinstance(item, dict):
        raise InvalidInput(f'pair {number} of {name} is not an object with "summary" and "story"')
    values = []
    for key in ("summary", "story"):
        if key not in item:
            raise InvalidInput(f'pair {number} of {name} has no "{key}" key')
        value = item[key]
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput(f'pair {number} of {name}: "{key}" must be non-empty text')
        values.append(value.strip())
    return StoryPair(*values)


def split_pairs(pairs: Sequence[T], train_fraction: float, seed: int) -> tuple[list[T], list[T]]:
    """A seeded shuffle cut into (train, eval); train always has at least one pair, eval may be empty."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    count = min(len(pairs), max(1, round(len(pairs) * train_fraction)))
    return [pairs[i] for i in order[:count]], [pairs[i] for i in order[count:]]


def storyteller_prompt(summary: str) -> str:
    """The prompt the writer sends for ``summary`` in the ``storyteller`` format (see ``story_request``)."""
    return STORYTELLER_TEMPLATE.format(summary=summary.strip())


def answer_text(story: str) -> str:
    """What the model should write after the prompt: the story, then the stop word the writer cuts at."""
    return f" {story.strip()} {STORYTELLER_STOP}"


def encode_pair(tokenizer: Any, pair: StoryPair, max_tokens: int, *, number: int = 0) -> TokenizedExample:
    """Prompt tokens (labels ``-100``) + answer tokens + end-of-sequence, cut to ``max_tokens``."""
    prompt_ids = list(tokenizer(storyteller_prompt(pair.summary))["input_ids"])
    answer_ids = list(tokenizer(answer_text(pair.story), add_special_tokens=False)["input_ids"])
    if tokenizer.eos_token_id is not None:
        answer_ids.append(int(tokenizer.eos_token_id))
    if len(prompt_ids) + MIN_ANSWER_TOKENS > max_tokens:
        where = f"pair {number}" if number else "a pair"
        raise InvalidInput(
            f"the summary of {where} is {len(prompt_ids)} tokens long with the template, too long for "
            f"training.story_max_tokens = {max_tokens}; shorten it or raise the limit"
        )
    input_ids = (prompt_ids + answer_ids)[:max_tokens]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + answer_ids)[:max_tokens]
    return TokenizedExample(input_ids, labels)


def collate(examples: Sequence[TokenizedExample], pad_token_id: int) -> dict[str, Any]:
    """Right-padded ``input_ids``/``attention_mask``/``labels`` tensors for one batch."""
    import torch

    width = max(len(example.input_ids) for example in examples)
    ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        length = len(example.input_ids)
        ids[row, :length] = torch.tensor(example.input_ids)
        labels[row, :length] = torch.tensor(example.labels)
        mask[row, :length] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
