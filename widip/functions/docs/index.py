"""The documentation index as a tool client: search with a principal's rights, embedding lazily.

Built by `Clients.docs` in the processes that run tools (the worker), so the offline embedding
model is loaded there on first use and never in web.
"""

from __future__ import annotations

from widip.functions import db
from widip.functions.access_matrix import access_for
from widip.functions.docs.embedding import embedder_for
from widip.functions.docs.search import Scope, search

#: Characters of a passage handed to a model (a chunk is at most ~1,200).
PASSAGE_CHARS = 1200


class DocsIndex:
    def __init__(self, settings, pool=None):
        self._settings = settings
        self._pool = pool or db.make_pool(settings.database_url, max_size=4)
        self._owns_pool = pool is None

    def search(self, query: str, principal_user_id: int | None, *, limit: int = 5) -> dict:
        """Passages `principal_user_id` may read (public ones only when no human is behind the call)."""
        embedder = embedder_for(self._settings)
        with db.transaction(self._pool) as conn:
            rights = access_for(conn, principal_user_id) if principal_user_id else None
            found = search(conn, query, Scope.of(rights), embedder=embedder, limit=limit)
        return {"query": query, "passages": [
            {"citation": p["citation"], "document_id": p["document_id"], "title": p["title"],
             "heading": p["heading"], "source": p["source"], "text": p["text"][:PASSAGE_CHARS]} for p in found],
            "consigne": "Cite chaque source utilisée entre crochets, par exemple [" +
                        (found[0]["citation"] if found else "doc1-abcdef12") + "]."}

    def close(self) -> None:
        if self._owns_pool:
            self._pool.close()
