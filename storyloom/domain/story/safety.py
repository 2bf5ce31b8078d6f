"""Kid-safety screening of story requests (and of what the model wrote).

A word list plus a few patterns, checked before any model runs, so a refusal is instant, explains
itself and costs no GPU time. It is the first of three layers: the storyteller system prompt asks the
model for gentle stories, and the image safety checker looks at every picture.

Limits, on purpose and known:
- it matches words, not meaning: a paraphrase ("made him stop breathing") passes, and some innocent
  uses are refused ("killer whale", "blood orange"; "bloodhound" and "skill" are fine);
- English and a few Chinese words only; other languages rely on the system prompt and the model;
- simple obfuscation (``k i l l``, ``k.i.l.l``, ``KILL``, full-width letters) is caught, creative
  spelling (``k1ll``, ``unalive``) is not;
- no slur list: hateful requests rely on the model's own alignment.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from storyloom.errors import InvalidInput

# Category -> regular expressions over normalised, lower-cased text (Latin words get \b boundaries).
_WORDS: dict[str, tuple[str, ...]] = {
    "violent": (
        r"kill(s|ed|ing|er|ers)?",
        r"murder\w*",
        r"slaughter\w*",
        r"massacre\w*",
        r"stab(s|bed|bing)?",
        r"behead\w*",
        r"decapitat\w*",
        r"dismember\w*",
        r"tortur\w*",
        r"gore",
        r"gory",
        r"blood(y|bath|shed)?",
        r"corpses?",
        r"dead bod(y|ies)",
        r"(hand)?guns?",
        r"rifles?",
        r"shotguns?",
        r"pistols?",
        r"bombs?",
        r"terroris\w*",
        r"genocide",
        r"strangl\w*",
        r"(shoot|shot|shooting)s? (him|her|them|people|everyone|each other|his|her|their)",
    ),
    "self-harm": (
        r"suicid\w*",
        r"self[- ]?harm\w*",
        r"kill (him|her|them)sel(f|ves)",
        r"cut(s|ting)? (him|her|my|them)sel(f|ves)",
    ),
    "adult": (
        r"sex(y|ual|ually)?",
        r"nude(s)?",
        r"nudity",
        r"naked",
        r"nsfw",
        r"porn\w*",
        r"erotic\w*",
        r"xxx",
        r"boobs?",
        r"orgasm\w*",
        r"fetish\w*",
        r"hentai",
        r"strip(per|pers|tease)",
        r"lingerie",
        r"make love",
        r"making love",
    ),
    "drug": (r"cocaine", r"heroin", r"meth(amphetamine)?", r"marijuana", r"overdos\w*", r"get(ting)? high"),
}

# Scripts without spaces between words: matched as substrings.
_CJK_WORDS: dict[str, tuple[str, ...]] = {
    "violent": ("杀人", "杀死", "谋杀", "屠杀", "血腥", "尸体", "枪杀", "砍头", "虐待"),
    "self-harm": ("自杀", "自残"),
    "adult": ("色情", "裸体", "做爱", "性爱"),
    "drug": ("毒品", "吸毒"),
}

# Words a letter-spacer splits up (``k i l l``, ``s.e.x``) are joined back before matching.
_SPACED_LETTERS = re.compile(r"\b(?:[a-z][\s.\-_*]){2,}[a-z]\b")


@dataclass(frozen=True)
class SafetyVerdict:
    """Whether a text may become a children's story, and if not, which words made the call."""

    allowed: bool
    category: str = ""
    matches: tuple[str, ...] = field(default_factory=tuple)

    @property
    def reason(self) -> str:
        if self.allowed:
            return ""
        quoted = ", ".join(f'"{word}"' for word in self.matches[:3])
        what = {"adult": "adult", "violent": "violent", "self-harm": "self-harm", "drug": "drug-related"}.get(
            self.category, "unsuitable"
        )
        return f"asks for {what} content ({quoted})"


class SafetyScreen:
    """Screens text for content a children's story must not have. ``extra_words`` (for example the
    bot's ``banned_words``) are refused as well."""

    def __init__(self, extra_words: Iterable[str] = ()) -> None:
        self._patterns: list[tuple[str, re.Pattern[str]]] = []
        for category, words in _WORDS.items():
            self._patterns.append((category, re.compile(r"\b(?:" + "|".join(words) + r")\b")))
        extra = [re.escape(word.strip().lower()) for word in extra_words if word and word.strip()]
        if extra:
            self._patterns.append(("banned", re.compile(r"(?<!\w)(?:" + "|".join(extra) + r")(?!\w)")))

    def check(self, text: str) -> SafetyVerdict:
        normalized = _normalize(text)
        for category, pattern in self._patterns:
            found = tuple(dict.fromkeys(match.group(0) for match in pattern.finditer(normalized)))
            if found:
                return SafetyVerdict(False, category, found)
        for category, words in _CJK_WORDS.items():
            found = tuple(word for word in words if word in normalized)
            if found:
                return SafetyVerdict(False, category, found)
        return SafetyVerdict(True)

    def ensure_allowed(self, summary: str) -> None:
        """Raise a polite :class:`InvalidInput` that says why, when ``summary`` is refused."""
        verdict = self.check(summary)
        if not verdict.allowed:
            raise InvalidInput(
                "Sorry, storyloom only writes gentle stories for children, and this summary "
                f"{verdict.reason}. Please try a different idea."
            )


def _normalize(text: str) -> str:
    """NFKC (full-width letters become ASCII), lower case, and letter-spaced words joined."""
    text = unicodedata.normalize("NFKC", text).lower()
    return _SPACED_LETTERS.sub(lambda match: re.sub(r"[\s.\-_*]", "", match.group(0)), text)
