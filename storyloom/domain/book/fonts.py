"""Finding fonts for the PDF book on this machine, and what to do with characters none of them has.

PDF core fonts only know Latin-1, so the book embeds a Unicode TrueType font when one is installed
(DejaVu, Noto, Liberation, ...) and adds fallback fonts for scripts the main font lacks (for Chinese:
Noto CJK, WenQuanYi, Droid Sans Fallback, ...), found by file name or by asking ``fc-list`` for a font
with the missing character. Characters no font can draw are replaced, never passed on to crash fpdf.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import ImageFont

logger = logging.getLogger(__name__)

FONT_DIRS = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.local/share/fonts",
    "~/.fonts",
    "/Library/Fonts",
    "/System/Library/Fonts",
    "~/Library/Fonts",
    "C:/Windows/Fonts",
)
# (regular, bold) pairs in order of preference: a book face first, then sans faces.
TEXT_FONTS = (
    ("DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf"),
    ("NotoSerif-Regular.ttf", "NotoSerif-Bold.ttf"),
    ("LiberationSerif-Regular.ttf", "LiberationSerif-Bold.ttf"),
    ("FreeSerif.ttf", "FreeSerifBold.ttf"),
    ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"),
    ("NotoSans-Regular.ttf", "NotoSans-Bold.ttf"),
    ("LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf"),
    ("georgia.ttf", "georgiab.ttf"),
    ("arial.ttf", "arialbd.ttf"),
)
FALLBACK_FONTS = (
    "NotoSerifCJK-Regular.ttc",
    "NotoSansCJK-Regular.ttc",
    "NotoSansCJKsc-Regular.otf",
    "NotoSansSC-Regular.otf",
    "SourceHanSansSC-Regular.otf",
    "wqy-microhei.ttc",
    "wqy-zenhei.ttc",
    "DroidSansFallbackFull.ttf",
    "msyh.ttc",
    "simsun.ttc",
    "Arial Unicode.ttf",
)
LATIN_1 = frozenset(range(0x20, 0x7F)) | frozenset(range(0xA0, 0x100))
_ASCII_LOOKALIKES = {
    "“": '"',
    "”": '"',
    "„": '"',
    "‘": "'",
    "’": "'",
    "—": "-",
    "–": "-",
    "…": "...",
    "\u00a0": " ",
}
# Above this share of undrawable letters a page shows a notice instead of a row of replacement marks.
MAX_MISSING_SHARE = 0.3


@dataclass(frozen=True)
class FontFile:
    path: Path
    index: int = 0  # face number inside a .ttc collection


@dataclass
class FontSet:
    """The fonts a book uses and the code points they can draw (Latin-1 when only core fonts exist)."""

    regular: FontFile | None = None
    bold: FontFile | None = None
    fallbacks: list[FontFile] = field(default_factory=list)
    coverage: set[int] = field(default_factory=lambda: set(LATIN_1))

    def sanitize(self, text: str) -> tuple[str, int]:
        """``text`` with characters no font can draw replaced; returns (text, letters replaced)."""
        out, missing = [], 0
        for char in text:
            if char in "\n\t" or ord(char) in self.coverage:
                out.append(char)
                continue
            substitute = _ASCII_LOOKALIKES.get(char) or unicodedata.normalize("NFKD", char)[:1]
            if substitute and all(ord(c) in self.coverage for c in substitute):
                out.append(substitute)
                continue
            if char.isspace():
                out.append(" ")
                continue
            if unicodedata.category(char).startswith("L"):
                missing += 1
            out.append("?" if ord("?") in self.coverage else "")
        return "".join(out), missing


def find_fonts(sample_text: str = "", *, search_dirs: tuple[str, ...] = FONT_DIRS) -> FontSet:
    """The best text font installed, plus fallback fonts for characters of ``sample_text`` it lacks."""
    files = _font_files(search_dirs)
    fonts = FontSet()
    for regular, bold in TEXT_FONTS:
        if regular.lower() in files:
            fonts.regular = FontFile(files[regular.lower()])
            fonts.bold = FontFile(files[bold.lower()]) if bold.lower() in files else None
            fonts.coverage = _cmap(fonts.regular)
            break
    if fonts.regular is None:
        return fonts
    needed = {ord(c) for c in sample_text if not c.isspace()} - fonts.coverage
    candidates = [FontFile(files[name.lower()]) for name in FALLBACK_FONTS if name.lower() in files]
    candidates += _fc_list_fonts(sorted(needed)[:3])
    for candidate in candidates:
        if not needed:
            break
        covered = _cmap(candidate)
        if needed & covered and candidate not in fonts.fallbacks:
            fonts.fallbacks.append(candidate)
            fonts.coverage |= covered
            needed -= covered
    return fonts


def _font_files(search_dirs: tuple[str, ...]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for directory in search_dirs:
        root = Path(directory).expanduser()
        if not root.is_dir():
            continue
        for dirpath, _dirnames, filenames in os.walk(root):
            for name in filenames:
                if name.lower().endswith((".ttf", ".otf", ".ttc")):
                    found.setdefault(name.lower(), Path(dirpath) / name)
    return found


def _fc_list_fonts(code_points: list[int]) -> list[FontFile]:
    """Fonts fontconfig says can draw each code point (none when fc-list is not installed)."""
    if not code_points or shutil.which("fc-list") is None:
        return []
    fonts: list[FontFile] = []
    for code in code_points:
        try:
            command = ["fc-list", f":charset={code:x}", "file", "index"]
            result = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return fonts
        for line in sorted(result.stdout.splitlines()):
            path, _, rest = line.partition(":")
            index = int(rest.split("=")[-1]) if "index=" in rest else 0
            if path.lower().endswith((".ttf", ".otf", ".ttc")):
                fonts.append(FontFile(Path(path.strip()), index))
    return fonts


def _cmap(font: FontFile) -> set[int]:
    """Code points ``font`` has glyphs for; empty when fontTools cannot read it."""
    try:
        from fontTools.ttLib import TTFont

        with TTFont(str(font.path), fontNumber=font.index, lazy=True) as parsed:
            return set(parsed.getBestCmap() or {})
    except Exception:
        logger.debug("cannot read font %s", font.path, exc_info=True)
        return set()


def wrap_text(text: str, length: Callable[[str], float], limit: float) -> list[str]:
    """Greedy line breaks: between words where the text has spaces, between characters where it has none."""
    units = text.split() if " " in text.strip() else list(text.strip())
    joiner = " " if " " in text.strip() else ""
    lines: list[str] = []
    current = ""
    for unit in units:
        candidate = f"{current}{joiner}{unit}" if current else unit
        if current and length(candidate) > limit:
            lines.append(current)
            current = unit
        else:
            current = candidate
    if current:
        lines.append(current)
    return lines


def picture_font(sample_text: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A font for text drawn into a picture: the book's text font (or a fallback that has the text's script),
    else Pillow's built-in font."""
    return picture_fonts(sample_text, size)[0]


def picture_fonts(sample_text: str, *sizes: int) -> list[ImageFont.FreeTypeFont | ImageFont.ImageFont]:
    """``picture_font`` at each of ``sizes``, from one search of the installed fonts."""
    fonts = find_fonts(sample_text)
    needed = {ord(c) for c in sample_text if not c.isspace()}
    candidates = [*([fonts.regular] if fonts.regular else []), *fonts.fallbacks]
    # A CJK text wants the fallback that covers it; Latin text the regular face.
    ordered = sorted(candidates, key=lambda f: f is fonts.regular and bool(needed - fonts.coverage))
    return [_first_loadable(ordered, size) for size in sizes]


def _first_loadable(fonts: list[FontFile], size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for font in fonts:
        try:
            return ImageFont.truetype(str(font.path), size, index=font.index)
        except OSError:
            continue
    return ImageFont.load_default(size)
