"""Jinja2 environment for the console: French labels, dates in Paris time, ages and durations."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
PARIS = ZoneInfo("Europe/Paris")

#: Accreditation levels as people at WIDIP name them.
ACCREDITATIONS = {0: "N0 · lecture", 1: "N1 · technicien", 2: "N2 · technicien confirmé",
                  3: "N3 · approbateur", 4: "N4 · administrateur"}

#: Status words from the data, in French.
LABELS = {
    "ok": "OK", "degraded": "dégradé", "down": "hors service", "unknown": "inconnu",
    "pending": "en attente", "approved": "approuvée", "rejected": "rejetée", "expired": "expirée",
    "scheduled": "planifiée", "running": "en cours", "executed": "exécutée", "failed": "en échec",
    "cancelled": "annulée", "refused": "refusée", "active": "en cours", "waiting_approval": "attend une validation",
    "completed": "terminée", "open": "ouvert", "recovered": "rétabli", "outage": "panne", "flapping": "instable",
    "done": "terminé", "success": "réussi", "error": "erreur", "skipped": "sauté", "sent": "envoyé",
    "device": "équipement", "site": "site", "client": "client", "warning": "avertissement",
}


#: widip.functions.monitoring's problem sentences (English, for logs and the API) as the console says them.
PROBLEMS = tuple((re.compile(pattern), french) for pattern, french in (
    (r"^(\S+) is down: (.*)$", r"\1 hors service : \2"),
    (r"^no fresh GLPI health probe.*$", "Aucune sonde GLPI récente : état inconnu, traité comme dégradé"),
    (r"^(\d+) outbox row\(s\) unsent for more than (\d+) days$",
     r"\1 envoi(s) de la boîte d'envoi bloqué(s) depuis plus de \2 jours"),
    (r"^(\d+) outbox row\(s\) failed to reach the broker$", r"\1 envoi(s) n'ont pas atteint la file de messages"),
    (r"^(\d+) dead-lettered message\(s\) in queue (\S+)$", r"\1 message(s) abandonné(s) dans la file \2"),
    (r"^scheduler: no scheduler tick recorded$", "Planificateur : aucun battement enregistré (est-il démarré ?)"),
    (r"^scheduler: no tick for (\d+) s$", r"Planificateur : aucun battement depuis \1 s"),
    (r"^(\d+) incident\(s\) without their GLPI ticket.*$", r"\1 incident(s) sans ticket GLPI : à ouvrir à la main"),
    (r"^(\d+) action\(s\) interrupted with an unknown outcome.*$",
     r"\1 action(s) interrompue(s) au résultat inconnu : vérifiez le système cible"),
))


def problem(text: str) -> str:
    for pattern, french in PROBLEMS:
        if pattern.match(text):
            return pattern.sub(french, text)
    return text


def _as_datetime(value) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def when(value) -> str:
    """02/12/2026 17:45 in Paris time, or an em dash."""
    moment = _as_datetime(value)
    return moment.astimezone(PARIS).strftime("%d/%m/%Y %H:%M") if moment else "—"


def duration(seconds) -> str:
    """A coarse French duration: « 45 s », « 12 min », « 3 h 05 », « 2 j 4 h »."""
    if seconds is None:
        return "—"
    seconds = max(0, int(float(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d}"
    days, hours = divmod(hours, 24)
    return f"{days} j {hours} h"


def ago(value, now: datetime | None = None) -> str:
    """« à l'instant », « il y a 5 min » — minutes at best, so a polled widget does not change every 3 s."""
    moment = _as_datetime(value)
    if moment is None:
        return "—"
    seconds = ((now or datetime.now(timezone.utc)) - moment).total_seconds()
    if seconds < 60:
        return "à l'instant" if seconds > -60 else "dans " + duration(-seconds)
    return "il y a " + duration(seconds - seconds % 60)


def until(value, now: datetime | None = None) -> str:
    moment = _as_datetime(value)
    if moment is None:
        return "—"
    seconds = (moment - (now or datetime.now(timezone.utc))).total_seconds()
    return "dépassé" if seconds <= 0 else "dans " + duration(seconds - seconds % 60 if seconds >= 60 else seconds)


def pretty(value) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)


def label(value) -> str:
    return LABELS.get(str(value), str(value)) if value is not None else "—"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(when=when, ago=ago, until=until, duration=duration, pretty=pretty, label=label,
                       problem=problem)
    env.globals.update(ACCREDITATIONS=ACCREDITATIONS)
    return env


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)
