"""The book files: story.md, page PNGs, book.html (offline, any script) and book.pdf (cover + one page per page)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from storyloom.domain.book.files import save_page_image, write_book
from storyloom.domain.book.fonts import FontSet, find_fonts
from storyloom.domain.book.pdf import write_pdf
from storyloom.domain.story.plan import ChapterPlan, PagePlan, StoryPlan
from storyloom.models.story.testing import FakeTxt2Img
from tests.support.books import pdf_pages

ENGLISH_PAGES = [
    "Bhna the cat lived in a cozy house by the sea. Every morning she watched the boats.",
    "One day a friendly dog knocked on the door. “Shall we go on an adventure?” he asked.",
    "They crossed a river on a wooden bridge and climbed a green hill — café au lait for everyone!",
]
CHINESE_PAGES = [
    "从前，有一只叫小花的小猫，住在海边。",
    "有一天，一只小狗来敲门。“你想去冒险吗？”",
    "她们开心地回家了。",
]


pytestmark = pytest.mark.usefixtures("quiet_fonts")


def make_plan(
    pages: list[str], *, title: str = "Bhna and the Sea", language: str = "en", chapters: int = 1
) -> StoryPlan:
    plan = StoryPlan(title=title, summary="A cat by the sea.", language=language, style="watercolor", base_seed=3)
    per_chapter = max(1, len(pages) // chapters)
    for number in range(1, chapters + 1):
        plan.chapters.append(ChapterPlan(number=number, title=f"Part {number}", summary="", text=""))
    for index, text in enumerate(pages):
        chapter = min(chapters, index // per_chapter + 1)
        scene = f"scene {index + 1} <b>"
        page = PagePlan(
            number=index + 1, chapter=chapter, text=text, scene=scene, prompt="p", negative_prompt="n", seed=index
        )
        plan.pages.append(page)
    return plan


def illustrate(plan: StoryPlan, directory: Path) -> None:
    fake = FakeTxt2Img(size=64)
    for page in plan.pages:
        batch = fake(page.prompt, seed=page.seed)
        save_page_image(directory, page, batch.images[0], batch.parameters[0])


def test_book_files_exist_and_pdf_has_cover_plus_one_page_per_page(tmp_path):
    plan = make_plan(ENGLISH_PAGES)
    illustrate(plan, tmp_path)
    files = write_book(plan, tmp_path)
    for path in (files.markdown, files.html, files.pdf, tmp_path / "story.json"):
        assert path.is_file() and path.stat().st_size > 0
    assert len(files.images) == 3
    assert pdf_pages(files.pdf) == 1 + len(plan.pages)
    assert files.notes == []  # DejaVu (or the core font's Latin-1) drew every character
    assert StoryPlan.load(tmp_path) == plan


def test_html_references_every_image_and_works_offline(tmp_path):
    plan = make_plan(ENGLISH_PAGES + ["A <script>alert(1)</script> & more."])
    illustrate(plan, tmp_path)
    html = write_book(plan, tmp_path).html.read_text(encoding="utf-8")
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert set(sources) == {page.image_name for page in plan.pages}
    assert all((tmp_path / source).is_file() for source in sources)
    assert '<meta charset="utf-8">' in html and '<html lang="en" dir="ltr">' in html
    assert "http://" not in html and "https://" not in html and "@import" not in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "“Shall we go on an adventure?”" in html


def test_markdown_lists_pages_in_order(tmp_path):
    plan = make_plan(ENGLISH_PAGES)
    markdown = write_book(plan, tmp_path).markdown.read_text(encoding="utf-8")
    assert markdown.startswith("# Bhna and the Sea")
    positions = [markdown.index(f"(page-0{n}.png)") for n in (1, 2, 3)]
    assert positions == sorted(positions)


def test_chinese_book_html_and_pdf(tmp_path):
    plan = make_plan(CHINESE_PAGES, title="小花的冒险", language="zh")
    illustrate(plan, tmp_path)
    files = write_book(plan, tmp_path)
    html = files.html.read_text(encoding="utf-8")
    assert '<html lang="zh"' in html and "小花的冒险" in html and "“你想去冒险吗？”" in html
    assert "Noto Serif CJK SC" in html  # CJK faces in the system font stack
    assert pdf_pages(files.pdf) == 1 + len(plan.pages)
    fonts = find_fonts("".join(CHINESE_PAGES))
    if not fonts.fallbacks:  # no CJK font installed: replaced and said so, not crashed
        assert any("cannot draw" in note for note in files.notes)


def test_pdf_with_only_core_fonts_never_crashes_on_any_script(tmp_path):
    plan = make_plan(ENGLISH_PAGES + CHINESE_PAGES + ["Кошка 🐱 ﷺ"], title="Bhna’s “Trip” 小花")
    notes = write_pdf(plan, tmp_path, tmp_path / "core.pdf", fonts=FontSet())
    assert pdf_pages(tmp_path / "core.pdf") == 1 + len(plan.pages)
    assert notes and "cannot draw" in notes[0]


def test_core_font_sanitizing_keeps_latin_and_replaces_the_rest():
    fonts = FontSet()
    assert fonts.sanitize("“Café” — ok…") == ('"Café" - ok...', 0)
    text, missing = fonts.sanitize("小花 cat")
    assert missing == 2 and text == "?? cat"


def test_long_pages_flow_instead_of_clipping(tmp_path):
    long_page = " ".join(["The cat walked along the shore and counted every shell she found."] * 40)
    plan = make_plan([long_page, "Short page."])
    illustrate(plan, tmp_path)
    files = write_book(plan, tmp_path)
    assert pdf_pages(files.pdf) > 1 + len(plan.pages)  # the text continued on a new sheet


def test_moderately_long_pages_shrink_the_picture_and_stay_on_one_sheet(tmp_path):
    page = " ".join(["Bhna looked at the boats and waved to the sailors."] * 10)
    plan = make_plan([page] * 3)
    illustrate(plan, tmp_path)
    assert pdf_pages(write_book(plan, tmp_path).pdf) == 4


def test_missing_pictures_and_chapters_still_make_a_book(tmp_path):
    plan = make_plan(ENGLISH_PAGES + ENGLISH_PAGES[:1], chapters=2)
    files = write_book(plan, tmp_path)  # no images drawn yet
    html = files.html.read_text(encoding="utf-8")
    assert html.count('class="missing"') == 1 + len(plan.pages) and "2. Part 2" in html
    assert pdf_pages(files.pdf) == 1 + len(plan.pages)


def test_page_png_carries_its_parameters(tmp_path):
    from storyloom.domain.parameters import read_png_parameters

    plan = make_plan(ENGLISH_PAGES[:1])
    illustrate(plan, tmp_path)
    params = read_png_parameters(tmp_path / "page-01.png")
    assert params is not None and params.seed == plan.pages[0].seed
    with Image.open(tmp_path / "page-01.png") as page:
        assert page.size == (64, 64)


def _is_subsequence(needles: list[str], haystack: list[str]) -> bool:
    remaining = iter(haystack)
    return all(any(word == candidate for candidate in remaining) for word in needles)


def test_pdf_renders_with_title_on_the_cover_and_every_word_of_every_page(tmp_path):
    """Rendered by a real PDF engine: the cover shows the title and a picture; no page text is lost or clipped."""
    pdfium = pytest.importorskip("pypdfium2")
    plan = make_plan(ENGLISH_PAGES)
    illustrate(plan, tmp_path)
    files = write_book(plan, tmp_path)
    document = pdfium.PdfDocument(str(files.pdf))
    assert len(document) == 1 + len(plan.pages)

    def words(text: str) -> list[str]:
        return re.findall(r"[A-Za-z]+", text)

    assert _is_subsequence(words(plan.title), words(document[0].get_textpage().get_text_range()))
    cover = document[0].render(scale=1).to_pil().convert("L")
    low, high = cover.getextrema()
    assert high - low > 50  # a picture, not a blank sheet
    for number, page in enumerate(plan.pages, start=1):
        extracted = words(document[number].get_textpage().get_text_range())
        assert _is_subsequence(words(page.text), extracted), f"page {number} lost words"
