"""Documents into passages: text extraction per format, then chunks cut at heading boundaries.

A chunk never spans two sections, so its heading path ("Runbook VPN > Clinique > Pare-feu") tells
where it comes from; a section longer than `MAX_CHARS` is cut between paragraphs, each piece
repeating the end of the previous one (`OVERLAP_CHARS`) so a sentence split across pieces is still
found whole in one of them.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from html.parser import HTMLParser

from widip.errors import Invalid

FORMATS = ("markdown", "text", "html", "pdf")
_EXTENSIONS = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text", ".html": "html",
               ".htm": "html", ".pdf": "pdf"}
#: Longest chunk, in characters (~300 tokens: several fit in a small model's context).
MAX_CHARS = 1200
OVERLAP_CHARS = 200
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
HEADING_SEPARATOR = " > "


@dataclass(frozen=True)
class Chunk:
    position: int
    heading: str
    text: str


def format_for(filename: str) -> str:
    """The format a file's extension names; Invalid for anything else."""
    suffix = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if suffix not in _EXTENSIONS:
        raise Invalid(f"{filename}: unsupported document type (use {', '.join(sorted(_EXTENSIONS))})")
    return _EXTENSIONS[suffix]


def to_markdown(raw: bytes, fmt: str) -> str:
    """The document as Markdown-like text (headings as `#` lines), whatever its format."""
    if fmt == "pdf":
        return _pdf_text(raw)
    text = raw.decode("utf-8-sig", errors="replace")
    if fmt == "html":
        parser = _HtmlToMarkdown()
        parser.feed(text)
        return parser.markdown()
    return text


def title_of(markdown: str, fallback: str) -> str:
    for line in markdown.splitlines():
        match = _HEADING.match(line.strip())
        if match and len(match.group(1)) == 1:
            return match.group(2).strip()[:200]
    return fallback[:200]


def chunk(markdown: str, *, max_chars: int = MAX_CHARS, overlap: int = OVERLAP_CHARS) -> list[Chunk]:
    """Passages with their heading path, in document order."""
    chunks: list[Chunk] = []
    for heading, body in _sections(markdown):
        for piece in _split(body, max_chars, overlap):
            chunks.append(Chunk(len(chunks), heading, piece))
    return chunks


def _sections(markdown: str):
    path: list[tuple[int, str]] = []
    lines: list[str] = []
    in_fence = False
    for line in markdown.splitlines():
        if line.strip().startswith("```"):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line.strip())
        if match:
            yield _heading(path), "\n".join(lines)
            level = len(match.group(1))
            path = [(lvl, name) for lvl, name in path if lvl < level] + [(level, match.group(2).strip())]
            lines = []
        else:
            lines.append(line)
    yield _heading(path), "\n".join(lines)


def _heading(path) -> str:
    return HEADING_SEPARATOR.join(name for _, name in path)


def _split(body: str, max_chars: int, overlap: int) -> list[str]:
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()]
    pieces: list[str] = []
    current = ""
    for paragraph in paragraphs:
        for part in _hard_wrap(paragraph, max_chars):
            if current and len(current) + 2 + len(part) > max_chars:
                pieces.append(current)
                tail = current[-overlap:]
                tail = tail[tail.find(" ") + 1:] if " " in tail else tail
                current = (tail + "\n\n" + part) if overlap else part
            else:
                current = f"{current}\n\n{part}" if current else part
    if current:
        pieces.append(current)
    return pieces


def _hard_wrap(paragraph: str, max_chars: int) -> list[str]:
    """A paragraph longer than a chunk, cut at sentence (else word) boundaries."""
    if len(paragraph) <= max_chars:
        return [paragraph]
    out, current = [], ""
    for sentence in re.split(r"(?<=[.!?;])\s+|\s+", paragraph):
        if current and len(current) + 1 + len(sentence) > max_chars:
            out.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}" if current else sentence
    if current:
        out.append(current)
    return out


def _pdf_text(raw: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(raw))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError) as exc:
        raise Invalid(f"unreadable PDF: {exc}") from None
    return "\n\n".join(f"## Page {i}\n\n{text}" for i, text in enumerate(pages, start=1) if text.strip())


class _HtmlToMarkdown(HTMLParser):
    """h1–h6 become `#` headings, block elements paragraph breaks; scripts and styles are dropped."""

    _BLOCKS = {"p", "div", "li", "tr", "br", "section", "article", "pre", "table", "ul", "ol"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self._out: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self._out.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag in self._BLOCKS:
            self._out.append("\n\n" if tag != "li" else "\n\n- ")

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif re.fullmatch(r"h[1-6]", tag):
            self._out.append("\n\n")

    def handle_data(self, data):
        if not self._skip:
            self._out.append(re.sub(r"\s+", " ", data))

    def markdown(self) -> str:
        lines = [line.strip() for line in "".join(self._out).splitlines()]
        return "\n".join(lines)
