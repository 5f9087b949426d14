"""A real Orthanc (Debian's `orthanc` + `orthanc-dicomweb`, installed by scripts/setup.sh) for tests.

Each call of `start_orthanc` runs its own `/usr/sbin/Orthanc` with a generated JSON config: free
DICOM and HTTP ports on loopback, its storage and index in the directory given (a tmp dir), no
authentication on loopback, the DICOMweb plugin (STOW-RS, QIDO-RS, WADO-RS under `/dicom-web/`)
loaded, and the remote AEs given as `modalities`. It accepts C-STORE from any AE (so the service's
export can send results to it) and is stopped by `.stop()` (or the fixture).

    # in a conftest.py: the fixture `orthanc` (one Orthanc per test), or start_orthanc(tmp_path, ...)
    from tests.dicom.orthanc import Orthanc, orthanc_fixture  # noqa: F401

    def test_x(orthanc: Orthanc) -> None:
        orthanc.add_modality("dentalai", "DENTALAI", "127.0.0.1", scp_port)   # our SCP, at runtime
        iid = orthanc.upload(dicom_bytes)                  # POST /instances -> Orthanc instance id
        orthanc.store_to("dentalai", [iid])                # C-STORE it to that AE (synchronous)
        orthanc.echo("dentalai")                           # C-ECHO, True on success
        orthanc.instances()                                # Orthanc ids of what it holds
        orthanc.instance_tags(iid)                         # {"0008,0060": ..} simplified: {Modality: ..}
        orthanc.instance_file(iid)                         # the DICOM file bytes
        orthanc.aet, orthanc.dicom_port                    # where its own SCP listens (C-STORE to it)
        orthanc.dicomweb_url                               # http://127.0.0.1:PORT/dicom-web (STOW-RS:
                                                           #   POST {dicomweb_url}/studies)

`orthanc.rest(method, path, ...)` is an httpx call to its REST API (https://orthanc.uclouvain.be/
api/). `ORTHANC` is the binary, `DICOMWEB_PLUGIN` the plugin's path; `require_orthanc()` skips
with the reason when they are absent (a newcomer's machine; CI's strict skip policy fails then).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
# Debian's orthanc-dicomweb puts its plugin here (a link to /usr/lib/orthanc/libOrthancDicomWeb.so.*).
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def require_orthanc(dicomweb: bool = True) -> None:
    """Skip (with the reason) unless Orthanc (and its DICOMweb plugin) are installed."""
    if not Path(ORTHANC).exists():
        pytest.skip("Orthanc is not installed (scripts/setup.sh installs Debian's orthanc)")
    if dicomweb and not DICOMWEB_PLUGIN.exists():
        pytest.skip(f"the Orthanc DICOMweb plugin is not installed ({DICOMWEB_PLUGIN}: orthanc-dicomweb)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Orthanc:
    """A running Orthanc: its AE title, ports, directory and process."""

    directory: Path
    aet: str
    http_port: int
    dicom_port: int
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def log_path(self) -> Path:
        return self.directory / "orthanc.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def rest(self, method: str, path: str, timeout: float = 60.0, **kwargs: Any) -> httpx.Response:
        """One call to the REST API; raises on an HTTP error with Orthanc's answer in the message."""
        response = httpx.request(method, self.url + path, timeout=timeout, **kwargs)
        if response.is_error:
            raise RuntimeError(f"Orthanc {method} {path}: {response.status_code} {response.text[:500]}")
        return response

    # ---- what Orthanc holds --------------------------------------------------------------------

    def upload(self, data: bytes) -> str:
        """Store a DICOM file in Orthanc (as a modality would); returns its Orthanc instance id."""
        return str(self.rest("POST", "/instances", content=data).json()["ID"])

    def instances(self) -> list[str]:
        return list(self.rest("GET", "/instances").json())

    def instance_tags(self, instance_id: str) -> dict[str, Any]:
        """Tags by keyword (Orthanc's `simplified-tags`), e.g. {"Modality": "PX", ...}."""
        return dict(self.rest("GET", f"/instances/{instance_id}/simplified-tags").json())

    def instance_file(self, instance_id: str) -> bytes:
        return self.rest("GET", f"/instances/{instance_id}/file").content

    def find_instances(self, **query: str) -> list[str]:
        """Orthanc ids of the instances whose tags match (`SOPInstanceUID="1.2..."`, wildcards ok)."""
        body = {"Level": "Instance", "Query": query}
        return list(self.rest("POST", "/tools/find", json=body).json())

    def delete_all(self) -> None:
        for instance_id in self.instances():
            self.rest("DELETE", f"/instances/{instance_id}")

    # ---- DICOM network -------------------------------------------------------------------------

    def add_modality(self, name: str, aet: str, host: str, port: int) -> None:
        """Declare a remote AE (our SCP) at runtime: `PUT /modalities/{name}`."""
        self.rest("PUT", f"/modalities/{name}", json={"AET": aet, "Host": host, "Port": port})

    def echo(self, modality: str, timeout: float = 10.0) -> bool:
        """C-ECHO to a declared modality; True when it answered success."""
        response = httpx.post(f"{self.url}/modalities/{modality}/echo", json={"Timeout": int(timeout)},
                              timeout=timeout + 5)
        return response.status_code == 200

    def store_to(self, modality: str, instance_ids: list[str], timeout: float = 60.0) -> dict[str, Any]:
        """C-STORE instances to a declared modality, synchronously (Orthanc's `POST /modalities/
        {name}/store`); raises RuntimeError with Orthanc's answer when the store failed. The
        answer's `FailedInstancesCount` counts instances the remote refused."""
        body = {"Resources": instance_ids, "Synchronous": True, "Timeout": int(timeout)}
        response = self.rest("POST", f"/modalities/{modality}/store", json=body, timeout=timeout + 10)
        return dict(response.json())

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def orthanc_config(
    directory: Path,
    aet: str,
    http_port: int,
    dicom_port: int,
    modalities: dict[str, tuple[str, str, int]] | None = None,
    dicomweb: bool = True,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON config `start_orthanc` writes: everything in `directory`, loopback only."""
    config: dict[str, Any] = {
        "Name": f"dentalai-test-{aet}",
        "StorageDirectory": str(directory / "storage"),
        "IndexDirectory": str(directory / "storage"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": aet,
        "RemoteAccessAllowed": False,  # loopback only, hence no authentication needed
        "AuthenticationEnabled": False,
        "HttpServerEnabled": True,
        "DicomServerEnabled": True,
        "DicomCheckCalledAet": False,
        "DicomAlwaysAllowStore": True,  # accept C-STORE from any AE (the service's export)
        "DicomAlwaysAllowEcho": True,
        "DicomCheckModalityHost": False,
        "UnknownSopClassAccepted": True,
        "DicomScuTimeout": 30,
        "DicomScpTimeout": 30,
        "StableAge": 1,
        "ConcurrentJobs": 2,
        "HttpTimeout": 60,
        "StorageCompression": False,
        "OverwriteInstances": True,
        "DicomModalities": {
            name: [ae, host, port] for name, (ae, host, port) in (modalities or {}).items()
        },
        "DicomModalitiesInDatabase": False,
        "Plugins": [str(DICOMWEB_PLUGIN)] if dicomweb else [],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True, "Ssl": False},
    }
    return {**config, **(extra or {})}


def start_orthanc(
    directory: Path,
    aet: str = "ORTHANC",
    modalities: dict[str, tuple[str, str, int]] | None = None,
    dicomweb: bool = True,
    extra: dict[str, Any] | None = None,
    timeout: float = 60.0,
) -> Orthanc:
    """Start Orthanc on free ports with its data in `directory`; waits until its REST API answers.
    `modalities`: {name: (AE title, host, port)} it may send to (more with `add_modality`);
    `extra`: config keys to add or replace. Call `.stop()` when done."""
    require_orthanc(dicomweb)
    directory.mkdir(parents=True, exist_ok=True)
    orthanc = Orthanc(directory=directory, aet=aet, http_port=_free_port(), dicom_port=_free_port())
    ports = orthanc.http_port, orthanc.dicom_port
    config = orthanc_config(directory, aet, *ports, modalities=modalities, dicomweb=dicomweb, extra=extra)
    config_path = directory / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=2))
    log = open(orthanc.log_path, "wb")  # noqa: SIM115 (lives as long as the process)
    # --verbose: the log says why an association or a store was refused when a test fails.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORTHANC")}
    orthanc.proc = subprocess.Popen(
        [ORTHANC, "--verbose", str(config_path)], stdout=log, stderr=subprocess.STDOUT, cwd=directory, env=env
    )
    try:
        _wait_ready(orthanc, dicomweb, timeout)
    except BaseException:
        orthanc.stop()
        raise
    return orthanc


def _wait_ready(orthanc: Orthanc, dicomweb: bool, timeout: float) -> None:
    assert orthanc.proc is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if orthanc.proc.poll() is not None:
            raise RuntimeError(f"Orthanc exited with {orthanc.proc.returncode}:\n{orthanc.log()[-3000:]}")
        try:
            if httpx.get(orthanc.url + "/system", timeout=1).status_code == 200:
                if dicomweb:
                    orthanc.rest("GET", "/dicom-web/studies")  # the plugin is loaded and answers
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"Orthanc did not answer within {timeout}s:\n{orthanc.log()[-3000:]}")


@pytest.fixture(name="orthanc")
def orthanc_fixture(tmp_path: Path) -> Iterator[Orthanc]:
    """`orthanc`: one Orthanc per test (it starts in under a second); import it into a conftest."""
    orthanc = start_orthanc(tmp_path / "orthanc")
    try:
        yield orthanc
    finally:
        orthanc.stop()
