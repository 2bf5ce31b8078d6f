"""The finished book in a directory: ``story.json``, page PNGs, ``story.md``, ``book.html``, ``book.pdf``.

``book.html`` is one self-contained UTF-8 file that works offline in any script: images are relative
paths next to it, fonts are the reader's system fonts (with CJK faces in the stack), ``lang``/``dir``
come from the story's language, and lines wrap in text without spaces.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from storyloom.domain.book.pdf import write_pdf
from storyloom.domain.story.plan import PagePlan, StoryPlan
from storyloom.domain.story.text import paragraphs

MARKDOWN_FILE = "story.md"
HTML_FILE = "book.html"
PDF_FILE = "book.pdf"


@dataclass(frozen=True)
class BookFiles:
    directory: Path
    markdown: Path
    html: Path
    pdf: Path
    images: list[Path]
    notes: list[str] = field(default_factory=list)


def save_page_image(book_dir: Path | str, page: PagePlan, image: Image.Image, parameters: Any = None) -> Path:
    """Write one page's picture as ``page-NN.png`` (with its generation parameters when given)."""
    path = Path(book_dir) / page.image_name
    path.parent.mkdir(parents=True, exist_ok=True)
    if parameters is not None:
        from storyloom.domain.parameters import save_png

        save_png(image, path, parameters)
    else:
        image.save(path)
    return path


def write_book(plan: StoryPlan, book_dir: Path | str) -> BookFiles:
    """(Re)write the plan, markdown, HTML and PDF from ``plan`` and the page images already on disk."""
    directory = Path(book_dir)
    directory.mkdir(parents=True, exist_ok=True)
    plan.save(directory)
    markdown = directory / MARKDOWN_FILE
    markdown.write_text(render_markdown(plan), encoding="utf-8")
    page_html = directory / HTML_FILE
    page_html.write_text(render_html(plan, directory), encoding="utf-8")
    pdf = directory / PDF_FILE
    notes = write_pdf(plan, directory, pdf)
    images = [directory / page.image_name for page in plan.pages if (directory / page.image_name).is_file()]
    return BookFiles(directory, markdown, page_html, pdf, images, notes)


def render_markdown(plan: StoryPlan) -> str:
    lines = [f"# {plan.title}", ""]
    chapter = 0
    for page in plan.pages:
        if page.chapter != chapter:
            chapter = page.chapter
            if len(plan.chapters) > 1:
                lines += [f"## {_chapter_heading(plan, chapter)}", ""]
        lines += [f"![{_one_line(page.scene)}]({page.image_name})", "", page.text.strip(), ""]
    return "\n".join(lines)


def render_html(plan: StoryPlan, book_dir: Path) -> str:
    escape = html.escape
    sections = []
    first = plan.pages[0] if plan.pages else None
    cover_image = _figure(first, book_dir, eager=True) if first else ""
    sections.append(f'<header class="cover">\n<h1>{escape(plan.title)}</h1>\n{cover_image}\n</header>')
    chapter = 0
    for page in plan.pages:
        if page.chapter != chapter:
            chapter = page.chapter
            if len(plan.chapters) > 1:
                sections.append(f'<h2 class="chapter">{escape(_chapter_heading(plan, chapter))}</h2>')
        text = "\n".join(f"<p>{escape(part)}</p>" for part in paragraphs(page.text))
        sections.append(
            f'<section class="page" id="page-{page.number}">\n{_figure(page, book_dir)}\n{text}\n'
            f'<p class="number">{page.number}</p>\n</section>'
        )
    body = "\n".join(sections)
    return f"""<!DOCTYPE html>
<html lang="{escape(plan.language)}" dir="{plan.direction}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(plan.title)}</title>
<style>
body {{ margin: 0; background: #f6f1e7; color: #2b2622;
  font: 1.2rem/1.65 "Iowan Old Style", Georgia, "Noto Serif", "DejaVu Serif",
    "Noto Serif CJK SC", "Source Han Serif SC",
    "Songti SC", "PingFang SC", "Hiragino Mincho ProN", "Microsoft YaHei", "Noto Sans", serif; }}
main {{ max-width: 42rem; margin: 0 auto; padding: 2rem 1rem 4rem; }}
h1 {{ font-size: 2.4rem; line-height: 1.2; text-align: center; margin: 1rem 0 1.5rem; }}
h2.chapter {{ text-align: center; margin: 3rem 0 0; }}
figure {{ margin: 0 0 1rem; }}
img {{ display: block; width: 100%; height: auto; border-radius: 0.8rem; }}
.missing {{ aspect-ratio: 1; border: 2px dashed #cbbfae; border-radius: 0.8rem; }}
.page {{ background: #fffdf8; border-radius: 1rem; padding: 1.25rem 1.5rem; margin: 2rem 0;
  box-shadow: 0 1px 6px rgba(0, 0, 0, 0.08); break-inside: avoid; }}
p {{ margin: 0 0 0.8em; overflow-wrap: break-word; line-break: strict; }}
.number {{ text-align: center; color: #8a7f72; font-size: 0.9rem; margin: 0; }}
@media print {{ body {{ background: #fff; }} .page {{ box-shadow: none; break-after: page; }} }}
</style>
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"""


def _figure(page: PagePlan, book_dir: Path, *, eager: bool = False) -> str:
    alt = html.escape(_one_line(page.scene), quote=True)
    path = book_dir / page.image_name
    if not path.is_file():
        return f'<figure><div class="missing" role="img" aria-label="{alt}"></div></figure>'
    with Image.open(path) as image:
        width, height = image.size
    loading = "" if eager else ' loading="lazy"'
    source = html.escape(page.image_name, quote=True)
    return f'<figure><img src="{source}" alt="{alt}" width="{width}" height="{height}"{loading}></figure>'


def _chapter_heading(plan: StoryPlan, number: int) -> str:
    title = next((chapter.title for chapter in plan.chapters if chapter.number == number), "")
    return f"{number}. {title}" if title else str(number)


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("[", "(").replace("]", ")")
