"""Citations of an answer: the documentation passages, returned by `docs_search`, that it quotes.

Computed the same way for a session's answer event and for the conversation's assistant message,
so a frontend links the same sources whichever it reads.
"""

from __future__ import annotations

import re

from psycopg import Connection

#: "[doc12-3f2a9c1b]" in an answer (see ingest.citation_for).
CITATION = re.compile(r"\[(doc\d+-[0-9a-f]{8})\]")
#: What a citation tells a frontend: the id cited, and the document and section to link.
FIELDS = ("citation", "document_id", "title", "heading", "source")
SEARCH_TOOL = "docs_search"


def cited(text: str, results: list) -> list[dict]:
    """The passages `text` cites among the `docs_search` results; all returned ones if it cites none."""
    returned: dict[str, dict] = {}
    for result in results:
        for passage in (result.get("passages") or ()) if isinstance(result, dict) else ():
            returned.setdefault(passage["citation"], {k: passage.get(k) for k in FIELDS})
    quoted = [returned[c] for c in dict.fromkeys(CITATION.findall(text or "")) if c in returned]
    return quoted or list(returned.values())


def of_session(conn: Connection, session_id: str, text: str) -> list[dict]:
    """The citations of a session's answer `text`, from the documentation searches it ran."""
    rows = conn.execute("SELECT result FROM tool_calls WHERE session_id = %s AND tool_name = %s AND status = 'done' "
                        "ORDER BY created_at", (session_id, SEARCH_TOOL)).fetchall()
    return cited(text, [r["result"] for r in rows])
