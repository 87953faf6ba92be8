"""Secret handles: how a generated password travels from the AD reset to Password Pusher without being seen.

`reset_password` puts the new password here and returns only an opaque handle ("sh_…"); the model,
the transcript, tool results and logs carry that handle. `MySecretClient.create_secret(secret_handle=…)`
redeems it (once) and sends the clear text only in its POST to Password Pusher.

At rest the value is encrypted with a key derived from the handle and stored under a key derived from
it too, so a Redis dump alone reveals neither the password nor the handle. A handle is single use
(GETDEL in a transaction) and lives at most 15 minutes (OWASP: short-lived, single-use tokens).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import secrets

from widip.errors import Conflict, NotFound

logger = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 900
MAX_TTL_SECONDS = 900
HANDLE_PREFIX = "sh_"
HANDLE_PATTERN = r"^sh_[A-Za-z0-9_-]{32}$"
_HANDLE_RE = re.compile(HANDLE_PATTERN)
_KEY_PREFIX = "widip:secret:"


def _derive(handle: str, purpose: bytes) -> bytes:
    return hashlib.sha256(purpose + b"\x00" + handle.encode("ascii")).digest()


def _cipher(handle: str):
    """AES-GCM keyed by the handle; `cryptography`'s 7 MB binding is loaded by the first secret, not at import."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(_derive(handle, b"widip-secret-key"))


class SecretStore:
    """Short-lived, single-use storage of secrets in Redis, addressed by random handles."""

    #: Handle prefix, handle pattern, Redis key prefix and longest lifetime (subclasses change them).
    handle_prefix = HANDLE_PREFIX
    handle_re = _HANDLE_RE
    key_prefix = _KEY_PREFIX
    max_ttl_seconds = MAX_TTL_SECONDS

    def __init__(self, redis_client, ttl_seconds: int = DEFAULT_TTL_SECONDS):
        if not 0 < ttl_seconds <= self.max_ttl_seconds:
            raise ValueError(f"ttl_seconds must be between 1 and {self.max_ttl_seconds}")
        self._redis = redis_client
        self.ttl_seconds = ttl_seconds

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ttl_seconds={self.ttl_seconds})"

    def _keys(self, handle: str) -> tuple[str, str]:
        ident = _derive(handle, b"widip-secret-id").hex()
        return self.key_prefix + ident, self.key_prefix + "used:" + ident

    def put(self, secret: str, ttl_seconds: int | None = None) -> str:
        """Store `secret` and return a fresh handle; the value expires after `ttl_seconds`."""
        if not isinstance(secret, str) or not secret:
            raise ValueError("secret must be a non-empty string")
        ttl = min(max(1, int(ttl_seconds or self.ttl_seconds)), self.max_ttl_seconds)
        handle = self.handle_prefix + secrets.token_urlsafe(24)
        key, _ = self._keys(handle)
        self._redis.set(key, self._seal(handle, key, secret), ex=ttl, nx=True)
        logger.debug("secret stored under a new handle (ttl %d s)", ttl)
        return handle

    @staticmethod
    def _seal(handle: str, key: str, secret: str) -> bytes:
        nonce = os.urandom(12)
        sealed = _cipher(handle).encrypt(nonce, secret.encode("utf-8"), key.encode())
        return base64.b64encode(nonce + sealed)

    @staticmethod
    def _open(handle: str, key: str, stored: bytes) -> str:
        raw = base64.b64decode(stored)
        return _cipher(handle).decrypt(raw[:12], raw[12:], key.encode()).decode("utf-8")

    def redeem(self, handle: str) -> str:
        """Return the secret and forget it. Raises Conflict if already redeemed, NotFound if unknown or expired."""
        if not isinstance(handle, str) or not self.handle_re.match(handle):
            raise NotFound("unknown secret handle")
        key, used_key = self._keys(handle)
        pipe = self._redis.pipeline(transaction=True)
        pipe.pttl(key)
        pipe.getdel(key)
        remaining_ms, stored = pipe.execute()
        if stored is None:
            if self._redis.exists(used_key):
                raise Conflict("secret handle already used")
            raise NotFound("secret handle unknown or expired")
        # The tombstone lives as long as the secret would have, so `restore` cannot extend its life.
        self._redis.set(used_key, 1, px=max(int(remaining_ms), 1))
        logger.debug("secret handle redeemed")
        return self._open(handle, key, stored)

    def restore(self, handle: str, secret: str) -> bool:
        """Put a redeemed secret back under its handle for what was left of its lifetime.

        Used when the delivery that redeemed it failed before reaching the remote side, so a retry can
        still deliver it. Returns False when the lifetime is over (the reset must then be redone).
        """
        key, used_key = self._keys(handle)
        remaining_ms = self._redis.pttl(used_key)
        if remaining_ms is None or int(remaining_ms) <= 0:
            return False
        restored = self._redis.set(key, self._seal(handle, key, secret), px=int(remaining_ms), nx=True)
        self._redis.delete(used_key)
        return bool(restored)

    def exists(self, handle: str) -> bool:
        """True while the handle can still be redeemed."""
        return bool(self.handle_re.match(handle or "")) and bool(self._redis.exists(self._keys(handle)[0]))
