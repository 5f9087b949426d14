"""API keys of clients: made random, configured only as their SHA-256 hex digest.

A key is 256 random bits, so one unsalted hash is enough to keep it out of the configuration
(nothing there could be presented as a key) and to find its client by digest.
"""

from __future__ import annotations

import hashlib
import secrets


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh API key: 43 URL-safe characters, 256 bits."""
    return secrets.token_urlsafe(32)
