"""Signed callbacks by default: the per-installation signing secret that `dentalai up` uses when
no `callbacks.signing_secrets` is configured.

The secret is Standard Webhooks' `whsec_<base64 of 32 random bytes>`, made once on the first start
and kept in `var/webhook-secret` (mode 0600), so a receiver configured with it keeps verifying
across restarts.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

SECRET_FILE = "webhook-secret"


def installation_secret(var: Path) -> tuple[str, Path, bool]:
    """(secret, its file, True when it was created now) under `var`."""
    path = var / SECRET_FILE
    if path.is_file():
        return path.read_text().strip(), path, False
    var.mkdir(parents=True, exist_ok=True)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    # O_EXCL: two starts at once do not overwrite each other's secret; 0600: not for other users.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(secret + "\n")
    return secret, path, True
