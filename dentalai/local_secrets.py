"""The secrets `dentalai up` makes for a one-machine installation, once, under var/ (mode 0600):

- `webhook-secret`: Standard Webhooks' `whsec_<base64 of 32 random bytes>`, signing callbacks when
  no `callbacks.signing_secrets` is configured, so a receiver keeps verifying across restarts;
- `redis-password`: the local redis-server's password (`requirepass`), when no Redis URL is set;
- `demo-client-key`: the API key of the demo client `demo`, when no client is configured.

Each is made on the first start and kept, so restarts keep working with what was handed out.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from dentalai.api_keys import new_key

WEBHOOK_SECRET_FILE = "webhook-secret"
REDIS_PASSWORD_FILE = "redis-password"
DEMO_KEY_FILE = "demo-client-key"


def kept_secret(var: Path, name: str, make: Callable[[], str]) -> tuple[str, Path, bool]:
    """(secret, its file, True when it was created now): var/name, made by `make` if absent."""
    path = var / name
    if path.is_file():
        return path.read_text().strip(), path, False
    var.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = make()
    # O_EXCL: two starts at once do not overwrite each other's secret; 0600: not for other users.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(secret + "\n")
    return secret, path, True


def _whsec() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def webhook_secret(var: Path) -> tuple[str, Path, bool]:
    return kept_secret(var, WEBHOOK_SECRET_FILE, _whsec)


def redis_password(var: Path) -> tuple[str, Path, bool]:
    return kept_secret(var, REDIS_PASSWORD_FILE, lambda: secrets.token_urlsafe(32))


def demo_client_key(var: Path) -> tuple[str, Path, bool]:
    return kept_secret(var, DEMO_KEY_FILE, new_key)
