"""What the bot refuses or forces for safety, decided from the request and the channel it came from.

- Prompts containing a configured banned word are refused before anything is queued.
- Story summaries go through the story engine's kid-safety screen (plus the banned words).
- Outside age-restricted channels (and in DMs) the image safety checker is forced on; flagged pictures come
  back blurred from the pipeline. In age-restricted channels the configured default applies.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from storyloom.domain.story.safety import SafetyScreen
from storyloom.errors import InvalidInput


class BannedWords:
    """Whole-word, case- and width-insensitive matching of the configured ``bot.banned_words``."""

    def __init__(self, words: Iterable[str]) -> None:
        cleaned = sorted({_fold(word) for word in words if word and word.strip()}, key=len, reverse=True)
        self._pattern = re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, cleaned)) + r")(?!\w)") if cleaned else None

    def find(self, text: str) -> str | None:
        if self._pattern is None or not text:
            return None
        match = self._pattern.search(_fold(text))
        return match.group(0) if match else None

    def ensure_allowed(self, text: str, *, what: str = "prompt") -> None:
        found = self.find(text)
        if found is not None:
            raise InvalidInput(f"the {what} contains a word this server does not allow (“{found}”); please rephrase it")


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().strip()


def story_screen(banned_words: Iterable[str]) -> SafetyScreen:
    """The story engine's kid-safety screen, extended with this server's banned words."""
    return SafetyScreen(extra_words=list(banned_words))


def is_age_restricted(channel: Any) -> bool:
    """True only for channels Discord marks age-restricted (threads inherit their parent's flag).

    Anything the bot cannot see the flag of (a partial channel, a DM) counts as not age-restricted."""
    is_nsfw = getattr(channel, "is_nsfw", None)
    try:
        return bool(is_nsfw()) if callable(is_nsfw) else False
    except AttributeError:  # a thread whose parent is not cached cannot tell; err on the safe side
        return False


def safety_checker_for(channel: Any) -> bool | None:
    """``True`` (forced on) outside age-restricted channels; ``None`` (the configured default) inside them."""
    return None if is_age_restricted(channel) else True
