"""Seeds: the one range every seed lives in, its check, fresh random seeds, and a story page's seed.

Seeds are 32-bit like AUTOMATIC1111's, so a seed copied from a PNG's parameters works everywhere.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from storyloom.errors import InvalidInput

MAX_SEED = 2**32 - 1


def check_seed(seed: Any) -> None:
    """Refuse a seed that is not a whole number in ``0..MAX_SEED``; ``None`` means "pick one"."""
    if seed is None:
        return
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise InvalidInput(f"seed must be a whole number between 0 and {MAX_SEED} (got {seed})")


def random_seed() -> int:
    return secrets.randbelow(MAX_SEED + 1)


def cast_seed(base_seed: int, name: str) -> int:
    """The seed of a story character's portrait on the cast card: fixed by the story's base seed and the
    character's name, so the card comes out the same for the same story."""
    digest = hashlib.sha256(f"{base_seed}:cast:{name.casefold()}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def page_seed(base_seed: int, page_number: int) -> int:
    """The seed of page ``page_number``: a hash of (base seed, page), so pages look unrelated in noise
    but every one is reproducible from the story's single base seed."""
    digest = hashlib.sha256(f"{base_seed}:{page_number}".encode()).digest()
    return int.from_bytes(digest[:4], "big")
