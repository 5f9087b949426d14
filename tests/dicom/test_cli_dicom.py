"""`dentalai dicom` refuses to start without callers; `dentalai up` starts the node when
dicom.enabled and stops it with the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from tests.conftest import REPO, api_key, client_entry, free_port, wait_port

pytestmark = pytest.mark.slow


def environment(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DENTALAI_")}
    env.update(PYTHONPATH=str(REPO), **values)
    return env


def test_no_callers_no_node(tmp_path: Path) -> None:
    env = environment(DENTALAI_REDIS_URL="redis://127.0.0.1:1/0", DENTALAI_AUTH__OPEN="true")
    done = subprocess.run(
        [sys.executable, "-m", "dentalai.cli", "dicom"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "dicom.callers is empty" in done.stderr, done.stderr


def test_up_starts_the_node_when_enabled(tmp_path: Path) -> None:
    grpc_port, dicom_port = free_port(), free_port()
    clients = [client_entry("pacs", api_key("pacs"), deidentify=False)]
    env = environment(
        DENTALAI_GRPC__PORT=str(grpc_port),
        DENTALAI_API__PORT=str(free_port()),
        DENTALAI_API__GRPC_TARGET=f"127.0.0.1:{grpc_port}",
        DENTALAI_UI__ENABLED="false",
        DENTALAI_WORKER__MODELS_DIR=str(tmp_path / "no-models"),
        DENTALAI_AUTH__CLIENTS=json.dumps(clients),
        DENTALAI_DICOM__ENABLED="true",
        DENTALAI_DICOM__PORT=str(dicom_port),
        DENTALAI_DICOM__CALLERS=json.dumps([{"ae_title": "PACS1", "client": "pacs"}]),
    )
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115
    command = [sys.executable, "-m", "dentalai.cli", "up"]
    up = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=log)
    try:
        wait_port(dicom_port, timeout=90)
        ae = AE(ae_title="PACS1")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", dicom_port, ae_title="DENTALAI")
        assert assoc.is_established and assoc.send_c_echo().Status == 0
        assoc.release()
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=60) == 0
        text = (tmp_path / "up.log").read_text(errors="replace")
        assert f"dicom       DENTALAI@127.0.0.1:{dicom_port}" in text and "dicom node stopped" in text
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
