"""Conversation memory: recent turns verbatim, older ones folded into a running summary, last entities.

What the model sees is bounded in tokens per provider (about 4 characters a token for French).
The summary is extractive — each older turn shortened to its question and the start of its answer
— so keeping memory costs no extra model call. The last ticket, device and login named are kept so
the rules provider can resolve "et celui-là ?".
"""

from __future__ import annotations

import re

#: Tokens of conversation history each provider is given (Claude has room; a local 14B model less).
HISTORY_TOKENS = {"anthropic": 6000, "ollama": 2000, "rules": 800}
CHARS_PER_TOKEN = 4
#: Share of the budget the running summary may take.
SUMMARY_SHARE = 0.25
ENTITY_PREFIX = "Derniers éléments cités :"
ENTITY_LABELS = {"ticket": "ticket", "device": "équipement", "login": "compte"}
_TICKET = re.compile(r"\bticket\s*(?:n[°o]\s*)?#?\s*(\d{1,9})", re.I)
_DEVICE = re.compile(r"\b((?:rtr|sw|fw|srv|ap|switch|routeur)[-.][A-Za-z0-9.\-_]{2,60})\b", re.I)
_ENTITY_LINE = re.compile(r"(ticket|équipement|compte)\s+([A-Za-z0-9.\-_]+)")
TITLE_CHARS = 80


def provider_name(settings) -> str:
    """Which provider a WIBOT turn will use (Claude when configured, else Ollama, else rules)."""
    choice = settings.llm_provider
    if choice == "auto":
        return "anthropic" if settings.anthropic_api_key else "ollama" if settings.ollama_host else "rules"
    return choice


def title_from(text: str) -> str:
    """A conversation's title: its first message, on one line, cut at a word boundary."""
    flat = " ".join(text.split())
    if len(flat) <= TITLE_CHARS:
        return flat
    return flat[:TITLE_CHARS].rsplit(" ", 1)[0] + "…"


def window(messages: list[dict], budget_tokens: int) -> tuple[list[dict], list[dict]]:
    """(older, recent): the most recent messages that fit the budget verbatim, and the rest."""
    budget = int(budget_tokens * (1 - SUMMARY_SHARE)) * CHARS_PER_TOKEN
    used, start = 0, len(messages)
    for index in range(len(messages) - 1, -1, -1):
        used += len(messages[index]["content"]) + 20
        if used > budget:
            break
        start = index
    if start < len(messages) and messages[start]["role"] == "assistant":
        start += 1  # never open the window on an answer without its question
    return messages[:start], messages[start:]


def summarize(older: list[dict], budget_tokens: int) -> str:
    """The older turns, newest kept first when the summary budget is short."""
    limit = int(budget_tokens * SUMMARY_SHARE) * CHARS_PER_TOKEN
    lines: list[str] = []
    for message in older:
        text = " ".join(message["content"].split())
        if message["role"] == "user":
            lines.append(f"- Question : {text[:160]}")
        elif lines:
            lines[-1] += f" → Réponse : {text[:200]}"
    kept: list[str] = []
    for line in reversed(lines):
        if sum(len(x) + 1 for x in kept) + len(line) > limit:
            break
        kept.insert(0, line)
    return "\n".join(kept)


def extract_entities(text: str, tool_arguments: list[tuple[str, dict]] = (), tool_results: list = ()) -> dict:
    """Ticket, device and login named in a turn (tool arguments and results first: they are what was
    acted on, e.g. the ticket a creation returned)."""
    found: dict = {}
    for result in tool_results:
        if isinstance(result, dict) and isinstance(result.get("ticket_id"), int):
            found["ticket"] = str(result["ticket_id"])
    for name, arguments in tool_arguments:
        if "ticket_id" in arguments:
            found["ticket"] = str(arguments["ticket_id"])
        if isinstance(arguments.get("device"), str):
            found["device"] = arguments["device"]
        if "username" in arguments:
            found["login"] = str(arguments["username"])
    if "ticket" not in found and (match := _TICKET.search(text or "")):
        found["ticket"] = match.group(1)
    if "device" not in found and (match := _DEVICE.search(text or "")):
        found["device"] = match.group(1)
    return found


def merge_entities(current: dict, found: dict) -> dict:
    """Newer entities win; `last` names the kind mentioned last (what "celui-là" points to)."""
    merged = {k: v for k, v in current.items() if k != "last"}
    merged.update(found)
    if found:
        merged["last"] = next(iter(reversed(list(found))))
    elif "last" in current:
        merged["last"] = current["last"]
    return merged


def entity_line(entities: dict) -> str:
    parts = [f"{ENTITY_LABELS[k]} {entities[k]}" for k in ("ticket", "device", "login") if entities.get(k)]
    if not parts:
        return ""
    last = entities.get("last")
    tail = f" (le plus récent : {ENTITY_LABELS[last]} {entities[last]})" if last in ENTITY_LABELS else ""
    return f"{ENTITY_PREFIX} " + " ; ".join(parts) + tail + "."


def parse_entity_line(system_text: str) -> dict:
    """Inverse of `entity_line`, for the rules provider (which only sees the transcript)."""
    for line in system_text.splitlines():
        if line.startswith(ENTITY_PREFIX):
            kinds = {label: key for key, label in ENTITY_LABELS.items()}
            found = {kinds[label]: value.rstrip(".") for label, value in _ENTITY_LINE.findall(line)}
            recent = re.search(r"le plus récent : (ticket|équipement|compte) ", line)
            if recent:
                found["last"] = kinds[recent.group(1)]
            return found
    return {}


def memory_message(summary: str, entities: dict) -> str:
    parts = []
    if summary:
        parts.append("Résumé des échanges plus anciens de cette conversation :\n" + summary)
    line = entity_line(entities)
    if line:
        parts.append(line)
    return "\n".join(parts)
