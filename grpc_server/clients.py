"""Who is calling: a call's bearer key resolved to its client (CONTRACT.md section 7).

Keys are configured only as SHA-256 hex digests (`auth.clients[].key_sha256`, dentalai.api_keys).
A presented key shorter than MIN_SECRET_CHARS is refused before hashing, so a
digest of a short, guessable key configured by mistake never lets anyone in. In the open
development mode (`auth.open`) every caller is the one client OPEN_CLIENT.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dentalai.api_keys import key_digest
from dentalai.config import MIN_SECRET_CHARS, OPEN_CLIENT, AuthSettings, ClientSettings


def bearer_key(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The key of an `authorization: Bearer <key>` metadata entry, or None."""
    for name, value in metadata or ():
        if name.lower() == "authorization":
            text = value.decode() if isinstance(value, bytes) else str(value)
            scheme, _, key = text.partition(" ")
            return key.strip() if scheme.lower() == "bearer" else None
    return None


class Clients:
    """The configured clients, by key digest."""

    def __init__(self, auth: AuthSettings) -> None:
        self.open = auth.open
        self._by_digest: dict[str, ClientSettings] = {d: c for c in auth.clients for d in c.key_sha256}

    def resolve(self, metadata: Iterable[tuple[str, Any]] | None) -> ClientSettings | None:
        """The caller's client, or None (10003)."""
        if self.open:
            return OPEN_CLIENT
        key = bearer_key(metadata)
        if key is None or len(key) < MIN_SECRET_CHARS:
            return None
        return self._by_digest.get(key_digest(key))
