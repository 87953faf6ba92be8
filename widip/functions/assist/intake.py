"""Assist intake: what Assist may do alone, decided in plain code before the category drives anything.

Ticket text is untrusted. Only a password reset or an unlock of the requester's *own* AD account is
automatic; everything else is handed over to a technician with the reason in French. The French
vocabulary lives in policy/assist_intake.toml (ops extend it); the order of the rules lives here.
"""

from __future__ import annotations

import functools
import re
import tomllib
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path

CATEGORIES = ("RESET_MDP", "DEBLOCAGE_COMPTE", "CREATION_COMPTE", "AUTRE")
AUTO, HANDOVER = "auto", "handover"
#: What Assist ends up doing (the evaluation set's "action").
ACTIONS = ("reset", "unlock", "creation", "handover")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
#: Zero-width, bidi and other invisible format characters; letters of scripts that imitate Latin.
_INVISIBLE = re.compile("[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e"
                        "\u2060-\u2064\u2066-\u2069\ufeff]")
_LOOKALIKE_SCRIPTS = ("CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE", "FULLWIDTH", "MATHEMATICAL")


@dataclass(frozen=True)
class Vocabulary:
    own_logins: tuple[str, ...]
    own_marker: re.Pattern
    managed_ous: tuple[str, ...]
    patterns: dict[str, re.Pattern]
    account_words: re.Pattern
    not_logins: frozenset[str]


@dataclass(frozen=True)
class Intake:
    category: str
    decision: str  # auto | handover
    reason: str  # French, shown to technicians
    action: str  # reset | unlock | creation | handover (what Assist intends)

    def to_dict(self) -> dict:
        return asdict(self)


@functools.lru_cache(maxsize=4)
def load_vocabulary(policy_dir: Path) -> Vocabulary:
    data = tomllib.loads((Path(policy_dir) / "assist_intake.toml").read_text(encoding="utf-8"))
    patterns = {}
    for section in ("categories", "signals", "handover"):
        for name, entries in data[section].items():
            if isinstance(entries, list) and name != "not_logins":
                patterns[name] = re.compile("|".join(f"(?:{e})" for e in entries), re.IGNORECASE)
    identity, handover = data["identity"], data["handover"]
    return Vocabulary(tuple(x.lower() for x in identity["own_logins"]), re.compile(identity["own_marker"]),
                      tuple(identity["managed_ous"]), patterns, re.compile(handover["account_words"], re.IGNORECASE),
                      frozenset(w.lower() for w in handover["not_logins"]))


def _lookalikes(text: str) -> bool:
    if _INVISIBLE.search(text):
        return True
    return any(ch.isalpha() and not ch.isascii() and any(s in unicodedata.name(ch, "") for s in _LOOKALIKE_SCRIPTS)
               for ch in text)


def signals(text: str, html: str, vocab: Vocabulary) -> str | None:
    """Instruction-like content in the ticket (French reason), or None."""
    p = vocab.patterns
    if html and p["hidden_html"].search(html):
        return "contenu masqué dans le HTML du ticket (texte invisible au lecteur)"
    if _lookalikes(text) or _lookalikes(html):
        return "caractères trompeurs (lettres d'un autre alphabet ou caractères invisibles)"
    if p["encoded"].search(text) or (html and p["encoded"].search(re.sub(r"<[^>]*>", " ", html))):
        return "contenu encodé (base64, hexadécimal, entités) dans le ticket"
    if p["instructions"].search(text):
        return "le ticket contient des instructions adressées au système ou un faux accord"
    return None


def classify(text: str, vocab: Vocabulary) -> str:
    """The category from the ticket's words (creation first; other systems are AUTRE)."""
    p = vocab.patterns
    if p["creation"].search(text):
        return "CREATION_COMPTE"
    if p["other_systems"].search(text) and not p["ad_markers"].search(text):
        return "AUTRE"
    unlock, reset = bool(p["unlock"].search(text)), bool(p["reset"].search(text))
    if reset or (p["password"].search(text) and not unlock):
        return "RESET_MDP"  # with a lockout too, the one reset also clears it (the mixed case)
    return "DEBLOCAGE_COMPTE" if unlock else "AUTRE"


def _beyond_requester(text: str, requester_email: str, requester_login: str, vocab: Vocabulary) -> str | None:
    p = vocab.patterns
    others = {e.lower() for e in _EMAIL.findall(text)} - {requester_email.lower()}
    if others:
        return f"le ticket mentionne une autre adresse que celle du demandeur ({sorted(others)[0]})"
    for key, reason in (("privileged", "compte privilégié, de service ou partagé mentionné"),
                        ("several", "plusieurs comptes concernés"),
                        ("other_person", "la demande concerne une autre personne que le demandeur"),
                        ("delivery", "envoi du mot de passe demandé hors du lien à l'adresse vérifiée"),
                        ("silent", "demande de clôture sans trace ou sans prévenir")):
        if p[key].search(text):
            return reason
    named = {m.lower() for m in vocab.account_words.findall(_EMAIL.sub(" ", text))}
    named -= vocab.not_logins | {requester_login.lower()}
    if named:
        return f"le ticket nomme un autre compte que celui du demandeur ({sorted(named)[0]})"
    return None


def assess(title: str, text: str, html: str, requester_email: str, vocab: Vocabulary, *,
           requester_login: str = "") -> Intake:
    """The intake decision for one ticket (title + plain text; raw HTML for hidden content)."""
    whole = f"{title}\n{text}"
    category = classify(whole, vocab)
    hostile = signals(whole, html, vocab)
    if hostile:
        return Intake(category, HANDOVER, hostile, "handover")
    if category == "CREATION_COMPTE":
        return Intake(category, HANDOVER, "création de compte : validation RH et équipe comptes requises",
                      "creation")
    if category == "AUTRE":
        return Intake(category, HANDOVER, "demande hors du périmètre d'Assist (pas le compte Windows du demandeur)",
                      "handover")
    beyond = _beyond_requester(whole, requester_email or "", requester_login or "", vocab)
    if beyond:
        return Intake(category, HANDOVER, beyond, "handover")
    return Intake(category, AUTO, "demande du demandeur pour son propre compte",
                  "reset" if category == "RESET_MDP" else "unlock")


def is_own(ticket_text: str, requester_logins: list[str], vocab: Vocabulary) -> bool:
    """Tickets widip opened itself (its GLPI user as requester, or its marker in the text)."""
    return bool(vocab.own_marker.search(ticket_text or "")) or any(
        (login or "").lower() in vocab.own_logins for login in requester_logins)
