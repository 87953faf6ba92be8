"""The LLM gateway (seed LLM_Gateway / LLM_Worker / LLM_Result): submit a prompt, poll or get a callback.

Where a request lives: in Redis, not PostgreSQL. `llm_request:{id}` (a hash: source, prompt,
system, model, callback URL, status) lives for REQUEST_TTL_SECONDS while it waits, and its answer
`llm_result:{id}` for 5 minutes (the seed's TTL), after which both are gone and the id is unknown.
Redis holds nothing that cannot be lost (docs/architecture.md), and a gateway request may be lost: the
caller polls, sees 404 and resubmits; nothing else refers to it, and prompts (which may carry
personal data) are not kept longer than needed. The Dramatiq message carries only the request id.

A `callback_url` must be http(s) on a host listed in LLM_CALLBACK_ALLOWLIST (refused with 400 at
submission, checked again at delivery), and redirects are never followed: the gateway must not be
a way to make widip POST to arbitrary internal addresses (SSRF).

This module does not enqueue: `submit` takes an `enqueue` callable, and the LLM job handler returns
the callback delivery as a NextStep for the actor to send.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import urlsplit

from widip.errors import Invalid, NotFound, Rejected
from widip.functions import job_table
from widip.functions.llm import queue as llm_queue
from widip.functions.integrations.http_client import make_client, send
from widip.functions.llm import Completion, Message, factory

logger = logging.getLogger(__name__)

KIND = "gateway"
REQUEST_KEY = "llm_request:{id}"
RESULT_KEY = "llm_result:{id}"
RESULT_TTL_SECONDS = 300
#: A request still waiting after an hour is dropped (the caller has long stopped polling).
REQUEST_TTL_SECONDS = 3600
MAX_PROMPT_CHARS = 200_000
CALLBACK_TIMEOUT_SECONDS = 10.0
CALLBACK_SYSTEM = "llm_callback"
UNAVAILABLE_TEXT = ("Le modèle de langage est momentanément indisponible : aucune réponse n'a pu être "
                    "générée. Merci de renouveler la demande un peu plus tard.")

SUBMIT_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["source", "prompt"],
    "properties": {
        "source": {"type": "string", "minLength": 1, "maxLength": 64,
                   "description": "caller: proactif_sentinel, proactif_notificateur, assist or wibot"},
        "prompt": {"type": "string", "minLength": 1, "maxLength": MAX_PROMPT_CHARS},
        "system": {"type": "string", "maxLength": MAX_PROMPT_CHARS},
        "model": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"},
        "callback_url": {"type": "string", "minLength": 1, "maxLength": 2048},
    },
}


class UnavailableLlm:
    """The gateway's fallback: answers, in French, that the LLM is unavailable."""

    name = "rules"
    local = False

    def complete(self, messages, tools=(), **kwargs) -> Completion:
        return Completion(text=UNAVAILABLE_TEXT, tool_calls=(), provider=self.name, model="none")


#: A free-form gateway prompt has no playbook: without an LLM the honest answer is "unavailable".
_GATEWAY_FALLBACK = UnavailableLlm()


def provider_for(settings, model: str | None = None):
    """The configured provider, falling back to the "unavailable" answer; local ones hold the GPU lock."""
    return factory.provider_for(settings, model, _GATEWAY_FALLBACK)


def is_remote(settings, model: str | None = None) -> bool:
    """True when calls do not use our GPU (Anthropic, rules): they go to `llm-remote`."""
    return not provider_for(settings, model).local


# --- submission ---------------------------------------------------------------------------------

def check_callback_url(url: str, allowlist) -> str:
    """The URL if it is http(s) to an allowlisted host ("host" or "host:port" entries); else Invalid."""
    if any(ch.isspace() or ord(ch) < 32 for ch in url) or "\\" in url:
        raise Invalid("callback_url: malformed URL")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise Invalid("callback_url: only http and https URLs are accepted")
    if parts.username is not None or parts.password is not None:
        raise Invalid("callback_url: credentials in the URL are not accepted")
    try:
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError:
        raise Invalid("callback_url: malformed port") from None
    if not host:
        raise Invalid("callback_url: a host is required")
    allowed = {entry.lower() for entry in allowlist}
    if host not in allowed and f"{host}:{port}" not in allowed:
        raise Invalid(f"callback_url: host {host!r} is not on LLM_CALLBACK_ALLOWLIST")
    return url


def submit(redis, settings, body: dict, *, enqueue) -> dict:
    """Store a request and enqueue its LLM job; return {request_id, status, position, estimated_wait}.

    `body` has been validated against SUBMIT_SCHEMA (the HTTP layer does it); the source and the
    callback URL are checked here.

    `enqueue(kind, job_id, source, remote=bool)` sends the job and returns its entry id in the
    broker's queue (for the position), or None.
    """
    cls = llm_queue.class_for(body["source"])
    callback_url = body.get("callback_url")
    if callback_url:
        check_callback_url(callback_url, settings.llm_callback_allowlist)
    model = body.get("model") or None
    remote = is_remote(settings, model)
    queue = llm_queue.queue_for(cls.name, remote=remote)
    request_id = str(uuid.uuid4())
    key = REQUEST_KEY.format(id=request_id)
    fields = {"source": body["source"], "class": cls.name, "queue": queue, "prompt": body["prompt"],
              "system": body.get("system") or "", "model": model or "", "callback_url": callback_url or "",
              "status": "pending", "submitted_at": _now()}
    redis.pipeline().hset(key, mapping=fields).expire(key, REQUEST_TTL_SECONDS).execute()
    entry_id = enqueue(KIND, request_id, cls.name, remote=remote)
    if entry_id:
        # NX: if the key were somehow gone already, do not leave a TTL-less stub behind.
        redis.pipeline().hset(key, "entry_id", entry_id).expire(key, REQUEST_TTL_SECONDS, nx=True).execute()
    position = llm_queue.queue_position(redis, queue, entry_id)
    logger.info("LLM request %s accepted from %s on %s at position %d", request_id, cls.name, queue, position)
    return {"request_id": request_id, "status": "pending", "position": position,
            "estimated_wait": llm_queue.estimated_wait_seconds(redis, queue, position)}


# --- polling ------------------------------------------------------------------------------------

def request_status(redis, request_id: str) -> dict:
    """The finished result ({status: done|failed, result…}) or {status: pending, position…}; NotFound."""
    try:
        request_id = str(uuid.UUID(request_id))
    except ValueError:
        raise NotFound(f"no LLM request {request_id[:64]!r}") from None
    result = redis.get(RESULT_KEY.format(id=request_id))
    if result is not None:
        return json.loads(result)
    request = load_request(redis, request_id)
    if request is None:
        raise NotFound(f"no LLM request {request_id} (unknown, or its result expired after "
                       f"{RESULT_TTL_SECONDS // 60} min)")
    running = request.get("status") == "running"
    position = 0 if running else llm_queue.queue_position(redis, request["queue"], request.get("entry_id"))
    return {"request_id": request_id, "status": "pending", "running": running, "position": position,
            "estimated_wait": llm_queue.estimated_wait_seconds(redis, request["queue"], position)}


def load_request(redis, request_id: str) -> dict | None:
    raw = redis.hgetall(REQUEST_KEY.format(id=request_id))
    if not raw:
        return None
    return {_text(k): _text(v) for k, v in raw.items()}


# --- the LLM job --------------------------------------------------------------------------------

def run_gateway_request(request_id: str, deps) -> list[job_table.NextStep]:
    """Ask the model, store the result for 5 min, and ask for the callback when there is one.

    Idempotent: a redelivered message whose result exists does nothing. Redis round trips are
    batched because they sit between two GPU calls.
    """
    redis, settings = deps.redis, deps.settings
    key, result_key = REQUEST_KEY.format(id=request_id), RESULT_KEY.format(id=request_id)
    # One round trip: read the request and mark it running (EXPIRE NX bounds a stub HSET would
    # create if the request were gone; it is deleted just below).
    averages = {lane: llm_queue.average_key(lane) for lane in ("local", "remote")}
    pipe = (redis.pipeline(transaction=False).hgetall(key).exists(result_key)
            .hset(key, mapping={"status": "running", "started_at": _now()})
            .expire(key, REQUEST_TTL_SECONDS, nx=True))
    for name in averages.values():
        pipe.get(name)
    raw, answered, _, _, *previous = pipe.execute()
    if not raw:
        redis.delete(key)
        logger.warning("LLM request %s is gone (expired or Redis lost); skipping", request_id)
        return []
    if answered:
        logger.info("LLM request %s already answered; skipping the redelivery", request_id)
        return []
    request = {_text(k): _text(v) for k, v in raw.items()}
    lane = llm_queue.lane(request["queue"])
    average_key, previous_average = averages[lane], dict(zip(averages, previous))[lane]
    messages = ([Message("system", request["system"])] if request.get("system") else [])
    messages.append(Message("user", request["prompt"]))
    started = time.perf_counter()
    try:
        completion = provider_for(settings, request.get("model") or None).complete(messages)
    except Rejected as exc:
        outcome = {"status": "failed", "result": None, "error": exc.message}
        logger.warning("LLM request %s refused by the provider: %s", request_id, exc.message)
    else:
        outcome = {"status": "done", "result": completion.text, "provider": completion.provider,
                   "model": completion.model, "usage": dict(completion.usage)}
    elapsed = time.perf_counter() - started
    document = {"request_id": request_id, "source": request["source"], **outcome,
                "duration_ms": round(elapsed * 1000), "completed_at": _now()}
    store_result(redis, request_id, document,
                 also={average_key: llm_queue.fold_average(previous_average, elapsed)})
    logger.info("LLM request %s %s in %.2f s", request_id, outcome["status"], elapsed)
    if request.get("callback_url"):
        return [job_table.NextStep(job_table.DELIVER_LLM_CALLBACK, (request_id,))]
    return []


def store_result(redis, request_id: str, document: dict, *, ttl_seconds: int = RESULT_TTL_SECONDS,
                 also: dict[str, str] | None = None) -> None:
    """Keep the result `ttl_seconds` and let the request expire with it (plus `also` keys, same trip)."""
    key = REQUEST_KEY.format(id=request_id)
    pipe = (redis.pipeline()
            .set(RESULT_KEY.format(id=request_id), json.dumps(document, ensure_ascii=False), ex=ttl_seconds)
            .hset(key, "status", document["status"]).expire(key, ttl_seconds))
    for name, value in (also or {}).items():
        pipe.set(name, value)
    pipe.execute()




# --- callbacks ----------------------------------------------------------------------------------

def deliver_callback(redis, settings, request_id: str, *, transport=None) -> bool:
    """POST the result to the request's callback URL; False when there is nothing (left) to send.

    Raises Unavailable (timeouts, 5xx: retry) or Rejected (4xx, a redirect, a URL no longer
    allowlisted: do not retry). Redirects are never followed.
    """
    request = load_request(redis, request_id)
    raw = redis.get(RESULT_KEY.format(id=request_id))
    if request is None or raw is None or not request.get("callback_url"):
        logger.warning("LLM callback for %s dropped: request or result expired", request_id)
        return False
    url = request["callback_url"]
    try:
        check_callback_url(url, settings.llm_callback_allowlist)
    except Invalid as exc:
        raise Rejected(CALLBACK_SYSTEM, exc.message) from None
    with make_client("", timeout=CALLBACK_TIMEOUT_SECONDS, transport=transport) as client:
        response = send(client, CALLBACK_SYSTEM, "POST", url, content=raw,
                        headers={"Content-Type": "application/json"}, follow_redirects=False)
    if response.status_code >= 300:
        raise Rejected(CALLBACK_SYSTEM, f"callback answered {response.status_code}; redirects are not followed",
                       status_code=response.status_code)
    logger.info("LLM callback for %s delivered (%d)", request_id, response.status_code)
    return True


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()
