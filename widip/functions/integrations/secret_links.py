"""One-time secret links (Password Pusher `…/p/<token>`) exist in clear only in the mail that carries them.

Whoever opens such a link first reads the password, so the clear URL must not sit in tool results,
mail arguments, agent events or transcripts where approvers (N3+) can read it. `mysecret_create_secret`
therefore returns a masked reference: `secret_url` is `…/p/••••`, `secret_ref` ("sl_…") names the clear
link kept encrypted in Redis for the link's lifetime (as SecretStore keeps passwords), and `push_id` is a
digest of the push token for audit and expiry. The clear link comes back at two places only:

- `expand_for_mail`: the mail tool replaces each reference in a body sent to the verified requester
  alone (any other recipient is refused);
- `for_reader`: the session owner's own chat view shows the link once; every later view, and every
  other reader at any level, sees the masked form.
"""

from __future__ import annotations

import hashlib
import logging
import re

from widip.errors import PolicyDenied
from widip.functions.integrations.secret_handles import SecretStore

logger = logging.getLogger(__name__)

REF_PATTERN = r"sl_[A-Za-z0-9_-]{32}"
_REF = re.compile(REF_PATTERN)
MASK = "••••"
#: Links live at most as long as Password Pusher keeps a push (90 days).
MAX_LINK_TTL_SECONDS = 90 * 86400


class SecretLinkStore(SecretStore):
    """Clear secret links, encrypted in Redis under "sl_…" references, readable until the push expires."""

    handle_prefix = "sl_"
    handle_re = re.compile(f"^{REF_PATTERN}$")
    key_prefix = "widip:link:"
    max_ttl_seconds = MAX_LINK_TTL_SECONDS

    def __init__(self, redis_client, ttl_seconds: int = 86400):
        super().__init__(redis_client, ttl_seconds)

    def peek(self, ref: str) -> str | None:
        """The clear link, without consuming it (the mail may be retried); None when unknown or expired."""
        if not isinstance(ref, str) or not self.handle_re.match(ref):
            return None
        key, _ = self._keys(ref)
        stored = self._redis.get(key)
        return self._open(ref, key, stored) if stored else None

    def reveal_once(self, ref: str) -> str | None:
        """The clear link the first time it is asked for, None afterwards (a marker remembers)."""
        key, used_key = self._keys(ref)
        ttl = self._redis.pttl(key)
        if ttl is None or int(ttl) <= 0 or not self._redis.set(used_key, 1, px=int(ttl), nx=True):
            return None
        return self.peek(ref)


def masked(secret_url: str) -> str:
    """`https://pwpush.widip.fr/p/••••` for `https://pwpush.widip.fr/p/<token>`."""
    base = secret_url.split("/p/", 1)[0] if "/p/" in secret_url else secret_url.rsplit("/", 1)[0]
    return f"{base}/p/{MASK}"


def push_id(url_token: str) -> str:
    """A stable, non-secret identifier of a push (for audit and expiry), from its token."""
    return "push-" + hashlib.sha256(url_token.encode()).hexdigest()[:16]


def reference(store: SecretLinkStore, link) -> dict:
    """What the tool returns for a created push: everything but the clear link."""
    ref = store.put(link.secret_url, ttl_seconds=link.expires_in_days * 86400)
    return {"secret_url": masked(link.secret_url), "secret_ref": ref, "push_id": push_id(link.url_token),
            "expires_in_days": link.expires_in_days, "expire_views": link.expire_views,
            "usage": f"Mettez {ref} dans le corps du mail au demandeur : le lien y sera inséré à l'envoi."}


def refs_in(text: str) -> list[str]:
    return _REF.findall(text or "")


def expand_for_mail(store: SecretLinkStore, body: str, recipients, verified_requester: str | None) -> str:
    """The body with each reference replaced by its clear link; PolicyDenied unless the mail goes to the
    verified requester alone (an approver cannot mail someone else's link to themselves)."""
    refs = refs_in(body)
    if not refs:
        return body
    wanted = (verified_requester or "").strip().lower()
    if not wanted or any(r.strip().lower() != wanted for r in recipients):
        raise PolicyDenied("un lien secret ne peut être envoyé qu'au demandeur vérifié du ticket, seul destinataire")
    for ref in dict.fromkeys(refs):
        clear = store.peek(ref)
        if clear is None:
            raise PolicyDenied("le lien secret a expiré ou n'existe pas : la réinitialisation est à refaire")
        body = body.replace(ref, clear)
    return body


def for_reader(store: SecretLinkStore | None, value, *, owner: bool):
    """`value` (events, a session view, text) with each reference masked, except in a chat `message`
    read by the session's owner, where the clear link is shown the first time."""
    if isinstance(value, dict):
        return {k: for_reader(store, v, owner=owner and k == "message") for k, v in value.items()}
    if isinstance(value, list):
        return [for_reader(store, v, owner=owner) for v in value]
    if not isinstance(value, str) or not refs_in(value):
        return value

    def shown(match: re.Match) -> str:
        clear = store.reveal_once(match.group(0)) if (owner and store is not None) else None
        return clear or f"[lien secret {MASK}]"

    return _REF.sub(shown, value)
