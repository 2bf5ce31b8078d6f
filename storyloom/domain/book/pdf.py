"""The PDF book: a cover (title and first picture), then one A5 page per story page, picture above text.

Text is set with ``multi_cell`` and automatic page breaks, so nothing is ever clipped: the picture
shrinks to make room for a long page, and text that still does not fit flows onto the next sheet.
Fonts come from :mod:`storyloom.domain.book.fonts`; characters no installed font can draw are
replaced, and a page that would be mostly replacement marks says to read ``book.html`` instead.
"""

from __future__ import annotations

from pathlib import Path

from storyloom.domain.book.fonts import MAX_MISSING_SHARE, FontSet, find_fonts
from storyloom.domain.story.plan import StoryPlan
from storyloom.domain.story.text import has_spaces, letter_count

PAGE_SIZE = (148.0, 210.0)  # A5, millimetres
MARGIN = 14.0
FOOTER = 12.0
BODY_SIZE = 12.5
SMALL_BODY_SIZE = 10.5
LINE_FACTOR = 0.52  # line height in mm per point of font size (about 1.45 leading)
MIN_PICTURE = 60.0
GAP = 6.0
INK = (43, 38, 34)
MUTED = (138, 127, 114)
UNREADABLE = (
    "[This text uses a script no installed font can show. Read it in book.html, or install a font "
    "such as Noto Sans CJK and write the book again.]"
)


def write_pdf(plan: StoryPlan, book_dir: Path, target: Path, *, fonts: FontSet | None = None) -> list[str]:
    """Write ``target``; returns notes about substituted characters (empty when everything was drawn)."""
    from fpdf import FPDF
    from fpdf.enums import WrapMode

    sample = plan.title + "".join(page.text for page in plan.pages) + "".join(c.title for c in plan.chapters)
    fonts = fonts if fonts is not None else find_fonts(sample)
    notes: list[str] = []
    if plan.direction == "rtl":
        notes.append("book.pdf shows right-to-left text unshaped (no text shaping engine); book.html shows it properly")

    class _Book(FPDF):
        def footer(self) -> None:
            if self.page_no() > 1:
                self.set_y(-FOOTER)
                self.set_font(family, "", 9)
                self.set_text_color(*MUTED)
                self.cell(0, 6, str(self.page_no() - 1), align="C")

    pdf = _Book(format=PAGE_SIZE)
    family, bold = _register_fonts(pdf, fonts)
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.set_auto_page_break(True, margin=MARGIN + FOOTER)
    pdf.set_title(_plain(plan.title))
    pdf.set_lang(plan.language)
    pdf.set_creator("storyloom")
    width = PAGE_SIZE[0] - 2 * MARGIN
    wrap = WrapMode.WORD if has_spaces(sample) else WrapMode.CHAR

    def text(value: str) -> str:
        clean, missing = fonts.sanitize(value)
        if missing:
            notes.append(f"{missing} characters the installed fonts cannot draw were replaced in book.pdf")
            if missing > MAX_MISSING_SHARE * max(1, letter_count(value)):
                return UNREADABLE
        return clean

    # Cover: title, then the first picture as large as fits.
    pdf.add_page()
    pdf.set_text_color(*INK)
    pdf.set_font(family, bold, 24)
    pdf.ln(8)
    pdf.multi_cell(width, 11, text(plan.title), align="C", wrapmode=wrap, new_x="LMARGIN", new_y="NEXT")
    if plan.pages:
        pdf.ln(GAP)
        room = PAGE_SIZE[1] - pdf.get_y() - MARGIN - FOOTER
        _picture(pdf, book_dir / plan.pages[0].image_name, max(MIN_PICTURE, min(width, room)))

    chapter = 0
    for page in plan.pages:
        pdf.add_page()
        pdf.set_text_color(*INK)
        if page.chapter != chapter:
            chapter = page.chapter
            if len(plan.chapters) > 1:
                title = next((c.title for c in plan.chapters if c.number == chapter), "")
                pdf.set_font(family, bold, 13)
                heading = f"{chapter}. {title}" if title else str(chapter)
                pdf.multi_cell(width, 7, text(heading), align="C", wrapmode=wrap, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(2)
        body = text(page.text)
        size = BODY_SIZE
        free = PAGE_SIZE[1] - pdf.get_y() - MARGIN - FOOTER
        text_height = _text_height(pdf, family, size, width, body, wrap)
        if free - text_height - GAP < MIN_PICTURE:
            size = SMALL_BODY_SIZE
            text_height = _text_height(pdf, family, size, width, body, wrap)
        picture = max(MIN_PICTURE, min(width, free - text_height - GAP))
        _picture(pdf, book_dir / page.image_name, picture)
        pdf.ln(GAP)
        pdf.set_font(family, "", size)
        pdf.multi_cell(width, size * LINE_FACTOR, body, align="L", wrapmode=wrap, new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(target))
    return sorted(set(notes))


def _register_fonts(pdf, fonts: FontSet) -> tuple[str, str]:
    """Embed the book's fonts; returns (family, bold style) to pass to ``set_font``."""
    if fonts.regular is None:
        return "Times", "B"
    pdf.add_font("body", "", str(fonts.regular.path), collection_font_number=fonts.regular.index)
    bold = ""
    if fonts.bold is not None:
        pdf.add_font("body", "B", str(fonts.bold.path), collection_font_number=fonts.bold.index)
        bold = "B"
    names = []
    for number, fallback in enumerate(fonts.fallbacks):
        name = f"fallback{number}"
        pdf.add_font(name, "", str(fallback.path), collection_font_number=fallback.index)
        names.append(name)
    if names:
        pdf.set_fallback_fonts(names, exact_match=False)
    return "body", bold


def _text_height(pdf, family: str, size: float, width: float, body: str, wrap) -> float:
    pdf.set_font(family, "", size)
    lines = pdf.multi_cell(width, size * LINE_FACTOR, body, wrapmode=wrap, dry_run=True, output="LINES")
    return len(lines) * size * LINE_FACTOR


def _picture(pdf, path: Path, size: float) -> None:
    """The square picture centred at the current position, or an empty frame if it is not drawn yet."""
    x = (PAGE_SIZE[0] - size) / 2
    y = pdf.get_y()
    if path.is_file():
        pdf.image(str(path), x=x, y=y, w=size, h=size, keep_aspect_ratio=True)
    else:
        pdf.set_draw_color(*MUTED)
        pdf.rect(x, y, size, size, style="D")
    pdf.set_y(y + size)


def _plain(value: str) -> str:
    """Metadata is Unicode in PDF, but keep it single-line."""
    return " ".join(value.split())
