"""Reading back the books the pipelines write."""

from __future__ import annotations

import re
from pathlib import Path


def pdf_pages(path: Path) -> int:
    """How many pages a PDF file has (counts its ``/Type /Page`` objects)."""
    return len(re.findall(rb"/Type\s*/Page\b", path.read_bytes()))
