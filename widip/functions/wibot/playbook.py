"""What the rules provider does for WIBOT beyond single intents: references to earlier turns and
documentation questions answered by quoting and citing the best passages.

Pure functions over the transcript: the rules provider (widip.functions.llm.rules) turns them into
tool calls and answers, so every call still goes through the gate.
"""

from __future__ import annotations

import re
from typing import Sequence

from widip.functions.llm.base import Message
from widip.functions.wibot.memory import parse_entity_line

_REFERENCE = re.compile(r"\b(celui-(?:là|la|ci)|celle-(?:là|la|ci)|ce ticket|cet équipement|cet equipement|"
                        r"ce routeur|ce compte|le même|la même|lui|idem)\b", re.I)
_FOLLOW_UP = re.compile(r"^\s*et\s+(?:(pour|avec|sur|dans|chez)\s+)?(.+?)\s*\??\s*$", re.I)
#: Passages quoted in a rules answer, and how much of each.
QUOTED = 2
QUOTE_CHARS = 450


def _user_texts(messages: Sequence[Message]) -> list[str]:
    return [m.content for m in messages if m.role == "user"]


def resolve_reference(messages: Sequence[Message]) -> str:
    """The last user message with "celui-là"-like words replaced by the conversation's last entity."""
    users = _user_texts(messages)
    text = users[-1] if users else ""
    if not _REFERENCE.search(text):
        return text
    system = "\n".join(m.content for m in messages if m.role == "system")
    entities = parse_entity_line(system)
    kind = entities.get("last")
    if kind == "ticket":
        return _REFERENCE.sub(f"ticket {entities['ticket']}", text, count=1)
    if kind == "device":
        return _REFERENCE.sub("", text, count=1) + f" état de {entities['device']}"
    if kind == "login":
        return _REFERENCE.sub(f"compte {entities['login']}", text, count=1)
    return text


def docs_query(messages: Sequence[Message]) -> str:
    """The documentation query for the last user message; a follow-up ("et pour la clinique ?")
    is read against the previous question ("Comment configurer le VPN pour la clinique ?")."""
    users = _user_texts(messages)
    text = users[-1].strip() if users else ""
    match = _FOLLOW_UP.match(text)
    if not match or len(users) < 2 or len(text.split()) > 8:
        return text
    previous = users[-2].strip().rstrip(" ?")
    preposition = (match.group(1) or "pour").lower()
    subject = match.group(2)
    head, sep, _ = previous.rpartition(f" {preposition} ")
    return f"{head} {preposition} {subject}" if sep else f"{previous} {preposition} {subject}"


def docs_answer(result) -> str | None:
    """Quoted, cited passages in French; None when nothing was found."""
    passages = (result or {}).get("passages") if isinstance(result, dict) else None
    if not passages:
        return None
    lines = ["D'après la documentation :"]
    for passage in passages[:QUOTED]:
        quote = " ".join(passage["text"].split())
        if len(quote) > QUOTE_CHARS:
            quote = quote[:QUOTE_CHARS].rsplit(" ", 1)[0] + " …"
        where = passage["title"] + (f" › {passage['heading']}" if passage.get("heading") else "")
        lines.append(f"« {quote} » [{passage['citation']}] ({where})")
    others = [f"[{p['citation']}]" for p in passages[QUOTED:]]
    if others:
        lines.append("Voir aussi : " + ", ".join(others) + ".")
    return "\n".join(lines)


NOT_FOUND = "Je n'ai trouvé aucun passage de la documentation à laquelle vous avez accès sur ce sujet."
