"""Build distilkit's demo corpus (src/distilkit/assets/corpus.txt.gz) from the public-domain novels.

One paragraph per line: wrapped lines are joined, whitespace is normalised, and what is not running
prose (chapter headings, contents lists, centred title pages, illustration captions, very short
lines) is dropped. The output is byte-for-byte deterministic (sorted inputs, gzip mtime 0).

    python scripts/build_demo_corpus.py --source ../shared/data/text/public-domain
"""

from __future__ import annotations

import argparse
import gzip
import re
from collections.abc import Iterator
from pathlib import Path

from distilkit.io import atomic_write_bytes

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "distilkit" / "assets" / "corpus.txt.gz"
MIN_WORDS = 6  # shorter paragraphs are headings, signatures or one-word replies: little to learn from
LIST_LINE_CHARS = 30  # a multi-line paragraph whose lines average fewer characters is a list (contents)
CENTRED_INDENT = 10  # a paragraph whose every line is indented this far is a centred title block
COLUMNS = re.compile(r"\S {5,}\S")  # text, a wide gap, more text: a table row ("Chapter I.      1")
HEADING = re.compile(r"^(chapter|letter|book|part|volume|etymology|extracts)\b", re.IGNORECASE)


def paragraphs(text: str) -> Iterator[list[str]]:
    """The source's paragraphs (runs of non-blank lines), as lists of raw lines."""
    block: list[str] = []
    for line in text.splitlines():
        if line.strip():
            block.append(line)
        elif block:
            yield block
            block = []
    if block:
        yield block


def is_prose(lines: list[str], words: list[str]) -> bool:
    if len(words) < MIN_WORDS:
        return False
    if HEADING.match(words[0]) and len(words) <= 20:
        return False
    if words[0].startswith("[") and words[-1].endswith("]"):
        return False  # an editor's bracketed note
    if not any(ch.islower() for ch in "".join(words)):
        return False  # all capitals: a heading or a title page
    if any(COLUMNS.search(line) for line in lines):
        return False
    if len(lines) >= 3 and sum(len(line.strip()) for line in lines) / len(lines) < LIST_LINE_CHARS:
        return False
    return not all(len(line) - len(line.lstrip()) >= CENTRED_INDENT for line in lines)


def reflow(text: str) -> Iterator[str]:
    """Yield one normalised paragraph per prose paragraph of a book."""
    in_caption = False
    for lines in paragraphs(text):
        joined = " ".join(lines)
        # Illustration captions can span blank lines ("[Illustration:\n\n GEORGE ALLEN ... ]").
        if in_caption or joined.lstrip().startswith("[Illustration"):
            in_caption = "]" not in joined
            continue
        words = joined.replace("_", "").split()  # '_word_' marks italics in these texts
        if is_prose(lines, words):
            yield " ".join(words)


def build(source: Path) -> bytes:
    books = sorted(source.glob("*.txt"))
    if not books:
        raise SystemExit(f"no .txt books in {source}")
    out_lines = [para for book in books for para in reflow(book.read_text(encoding="utf-8"))]
    text = "\n".join(out_lines) + "\n"
    # mtime=0 and no file name in the header: the same input always gives the same bytes.
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="folder of the public-domain .txt books")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    data = build(args.source)
    atomic_write_bytes(args.out, data)
    n_lines = gzip.decompress(data).count(b"\n")
    print(f"wrote {args.out}: {n_lines} paragraphs, {len(data)} bytes gzipped")


if __name__ == "__main__":
    main()
