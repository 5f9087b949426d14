"""A real PACS (Orthanc, tests/dicom/orthanc.py) sends to the node by C-STORE, as a clinic's would:
a panoramic film and a 4.6 MB lateral cephalogram built from real films become tasks of the
client of Orthanc's AE title, which the worker with the shipped models (models/, ONNX Runtime)
takes to SUCCEEDED with results only working models give; an instance no rule matches is
acknowledged and counted; an instance in JPEG Lossless, which this install does not decode and so
does not offer, reaches the node transcoded by Orthanc."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from pydicom.uid import SecondaryCaptureImageStorage

from dentalai.config import Settings
from dentalai.v1 import task_pb2
from tests import real_films
from tests.conftest import REPO, Processes, RedisServer
from tests.dicom import films
from tests.dicom.node import (
    PACS,
    counts,
    dataset,
    node_settings,
    tasks_of,
    wait_count,
    wait_final,
)
from tests.dicom.orthanc import Orthanc, start_orthanc

pytestmark = pytest.mark.slow
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"


@pytest.fixture(scope="module")
def setup(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, Orthanc]]:
    """The node (Orthanc's AE ORTHANC -> client pacs), a worker with the shipped models, and an
    Orthanc that knows the node as the modality `dentalai`."""
    real_films.require(real_films.PANO_FILM, films.CEPH_FULLRES)
    settings = node_settings(
        redis_server.url, {"ORTHANC": PACS}, worker={"models_dir": str(REPO / "models")},
        tasks={"task_timeout_s": 120},
    )  # fmt: skip
    procs = Processes(log_dir=tmp_path_factory.mktemp("orthanc-node"))
    orthanc = start_orthanc(tmp_path_factory.mktemp("orthanc") / "data")
    try:
        procs.start(["dicom"], settings, wait_line="dicom node ready")
        procs.start(["worker"], settings, wait_line="worker ready", timeout=180)
        orthanc.add_modality("dentalai", "DENTALAI", "127.0.0.1", settings.dicom.port)
        yield settings, orthanc
    finally:
        orthanc.stop()
        procs.stop_all()


def test_orthanc_sends_films_that_become_analysed_tasks(setup: tuple[Settings, Orthanc]) -> None:
    settings, orthanc = setup
    assert orthanc.echo("dentalai")
    pano, ceph = films.pano_film(), films.ceph_film()
    other = films.instance(np.full((300, 320), 90, np.uint8), SOPClassUID=SecondaryCaptureImageStorage,
                           Modality="OT")  # fmt: skip
    ceph_file = films.encode(ceph)
    assert len(ceph_file) > 4_500_000
    ids = [orthanc.upload(films.encode(pano)), orthanc.upload(ceph_file), orthanc.upload(films.encode(other))]
    before = counts(settings).get("unrouted", 0)
    answer = orthanc.store_to("dentalai", ids)
    assert (answer["InstancesCount"], answer["FailedInstancesCount"]) == (3, 0), answer
    # stored and queued before each C-STORE was answered: there when Orthanc's call returns
    assert set(tasks_of(settings, PACS)) >= {pano.SOPInstanceUID, ceph.SOPInstanceUID}
    assert other.SOPInstanceUID not in tasks_of(settings, PACS)
    wait_count(settings, "unrouted", before + 1)

    done = wait_final(settings, PACS, ceph.SOPInstanceUID, timeout=240)
    assert done.status == task_pb2.SUCCEEDED, done.error
    assert done.task_type == "ceph" and len(done.ceph.landmarks) == 19
    # the DICOM's own Pixel Spacing reached the pipeline (no request option gave one)
    assert done.ceph.image.pixel_spacing_mm == pytest.approx(0.1)
    assert done.ceph.image.width == 1935 and done.ceph.image.height == 2400

    done = wait_final(settings, PACS, pano.SOPInstanceUID, timeout=240)
    assert done.status == task_pb2.SUCCEEDED, done.error
    assert done.task_type == "pano"
    found = {tooth.fdi for tooth in done.pano.teeth}
    truth = real_films.pano_truth()
    assert abs(len(found) - len(truth)) <= 2 and len(found & truth) >= len(truth) - 3, (found, truth)


def test_a_syntax_not_offered_arrives_transcoded(setup: tuple[Settings, Orthanc]) -> None:
    settings, orthanc = setup
    assert JPEG_LOSSLESS_SV1 not in _offered(settings)  # no python-gdcm here: not offered
    source = orthanc.upload(films.encode(films.pano_film()))
    lossless = orthanc.rest(
        "POST", f"/instances/{source}/modify",
        json={"Transcode": JPEG_LOSSLESS_SV1, "Force": True, "Keep": ["SOPInstanceUID"]},
    ).content  # fmt: skip
    assert str(dataset(lossless).file_meta.TransferSyntaxUID) == JPEG_LOSSLESS_SV1
    sent = orthanc.upload(lossless)
    uid = orthanc.instance_tags(sent)["SOPInstanceUID"]
    answer = orthanc.store_to("dentalai", [sent])
    assert answer["FailedInstancesCount"] == 0, answer
    # not offered, so Orthanc sent it in a syntax the node offers; the worker decodes it
    assert uid in tasks_of(settings, PACS)
    done = wait_final(settings, PACS, uid, timeout=240)
    assert done.status == task_pb2.SUCCEEDED, done.error


def _offered(settings: Settings) -> list[str]:
    from dicom_node.scp import offered_syntaxes

    return offered_syntaxes(settings)
