"""A real Orthanc per module (checking the called AE title, so a wrong one is refused), the DICOM
results of a client that keeps identifiers, and settings with a C-STORE and a STOW-RS destination
to that Orthanc."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dentalai.config import Settings
from tests.dicom.orthanc import Orthanc, start_orthanc
from tests.exports.helpers import Harness, Results, make_results


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    server = start_orthanc(tmp_path_factory.mktemp("orthanc"), extra={"DicomCheckCalledAet": True})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def results() -> Results:
    return make_results()


def destinations(orthanc: Orthanc) -> list[dict]:
    return [
        {"name": "pacs", "kind": "cstore", "ae_title": orthanc.aet, "host": "127.0.0.1",
         "port": orthanc.dicom_port, "calling_ae_title": "DENTALAI"},
        {"name": "pacs-web", "kind": "stowrs", "url": orthanc.dicomweb_url},
        {"name": "wrong-ae", "kind": "cstore", "ae_title": "NOT-ORTHANC", "host": "127.0.0.1",
         "port": orthanc.dicom_port},
        {"name": "no-stow", "kind": "stowrs", "url": orthanc.url + "/no-such-service"},
    ]  # fmt: skip


@pytest.fixture
def export_settings(settings: Settings, orthanc: Orthanc) -> Settings:
    orthanc.delete_all()  # each test counts what arrives
    return settings.with_overrides(exports={"destinations": destinations(orthanc), "timeout_s": 10})


@pytest.fixture
def harness(export_settings: Settings) -> Harness:
    return Harness(export_settings)
