"""The Storage SCP as a real process (`dentalai dicom`) against pynetdicom as the sender: what each
bad input is answered (CONTRACT.md section 8), routing, idempotent re-sends, and that every
accepted instance is a stored, queued task of the caller's client before the C-STORE answer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pynetdicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    SecondaryCaptureImageStorage,
)

from dentalai.config import Settings
from dentalai.v1 import task_pb2
from dicom_node import status
from grpc_server.decode import decode_image
from tests.conftest import Processes, RedisServer, api_key, client_entry
from tests.dicom import films
from tests.dicom.node import (
    PACS,
    associate,
    counts,
    dataset,
    node_settings,
    send,
    stored_image,
    stored_task,
    tasks_of,
    wait_count,
)

pytestmark = pytest.mark.slow
MAX_BYTES = 8 * 2**20  # limits.max_image_bytes of this node


def pixels(rows: int = 600, cols: int = 512, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (rows, cols), dtype=np.uint8)


def pano(**tags: object) -> bytes:
    return films.encode(films.instance(pixels(), Modality="PX", **tags))


@pytest.fixture(scope="module")
def node(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """One node for the module: SENDER -> pacs, TINY -> tiny (a queue share of 1), PANOONLY ->
    panoonly (pano only)."""
    clients = [
        client_entry(PACS, api_key(PACS), deidentify=False),
        client_entry("tiny", api_key("tiny"), queue_share=1),
        client_entry("panoonly", api_key("panoonly"), task_types=["pano"]),
    ]
    callers = {"SENDER": PACS, "TINY": "tiny", "PANOONLY": "panoonly"}
    limits = {"max_image_bytes": MAX_BYTES}
    settings = node_settings(redis_server.url, callers, clients=clients, limits=limits)
    procs = Processes(log_dir=tmp_path_factory.mktemp("dicom-node"))
    try:
        procs.start(["dicom"], settings, wait_line="dicom node ready")
        yield settings
    finally:
        procs.stop_all()


def test_echo_and_the_calling_and_called_ae_titles(node: Settings) -> None:
    with associate(node, "SENDER") as assoc:
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0
    for calling, called, reason in (("STRANGER", "DENTALAI", 3), ("SENDER", "SOMEONE", 7)):
        with associate(node, calling, called_ae=called) as assoc:
            assert assoc.is_rejected
            rejection = assoc.acceptor.primitive
            # rejected-permanent, by the service user: calling (3) / called (7) AE title not recognized
            assert (rejection.result, rejection.result_source, rejection.diagnostic) == (1, 1, reason)


def test_unsupported_sop_class_or_syntax_refused_at_negotiation(node: Settings) -> None:
    contexts = [
        (CTImageStorage, [ExplicitVRLittleEndian]),
        (films.DX_PRESENTATION, [ExplicitVRBigEndian]),  # retired: not offered
        (SecondaryCaptureImageStorage, [JPEG2000Lossless]),  # offered
    ]
    with associate(node, contexts=contexts) as assoc:
        assert assoc.is_established
        refused = {(c.abstract_syntax, c.result) for c in assoc.rejected_contexts}
        # 3: abstract syntax not supported; 4: transfer syntaxes not supported
        assert refused == {(CTImageStorage, 3), (films.DX_PRESENTATION, 4)}
        accepted = {(c.abstract_syntax, c.transfer_syntax[0]) for c in assoc.accepted_contexts}
        assert (SecondaryCaptureImageStorage, JPEG2000Lossless) in accepted


@pytest.mark.parametrize(
    "syntax",
    [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, RLELossless,
     JPEGLSLossless, JPEGBaseline8Bit],
)  # fmt: skip
def test_each_transfer_syntax_becomes_a_task_the_worker_can_decode(node: Settings, syntax: str) -> None:
    ds = films.instance(pixels(), Modality="PX")
    answer = send(node, films.encode(ds, syntax))
    assert answer.Status == status.SUCCESS
    task = stored_task(node, PACS, ds.SOPInstanceUID)  # stored before the answer
    assert task is not None and task.status == task_pb2.QUEUED and task.task_type == "pano"
    assert task.callback.url == "" and task.callback.state == task_pb2.NO_CALLBACK
    assert dict(task.metadata) == {"source": "dicom", "callingAeTitle": "SENDER"}
    image = stored_image(node, PACS, ds.SOPInstanceUID)
    assert image is not None and str(dataset(image).file_meta.TransferSyntaxUID) == syntax  # as received
    decoded = decode_image(image, node.limits.max_image_pixels)
    assert decoded.pixels.shape == (600, 512) and decoded.source_format == "dicom"


def test_routing_unmatched_and_not_enabled_are_acknowledged_and_counted(node: Settings) -> None:
    before = counts(node)
    ceph = films.instance(pixels(), Modality="DX", BodyPartExamined="SKULL", ViewPosition="LL")
    assert send(node, films.encode(ceph)).Status == status.SUCCESS
    assert stored_task(node, PACS, ceph.SOPInstanceUID).task_type == "ceph"
    other = films.instance(pixels(), SOPClassUID=SecondaryCaptureImageStorage, Modality="OT")
    assert send(node, films.encode(other)).Status == status.SUCCESS  # acknowledged...
    assert stored_task(node, PACS, other.SOPInstanceUID) is None  # ...not analysed
    wait_count(node, "unrouted", before.get("unrouted", 0) + 1)
    # a client limited to pano: its ceph is acknowledged, not analysed, counted
    ceph2 = films.instance(pixels(), Modality="DX", BodyPartExamined="SKULL", ViewPosition="RL")
    assert send(node, films.encode(ceph2), "PANOONLY").Status == status.SUCCESS
    assert stored_task(node, "panoonly", ceph2.SOPInstanceUID) is None
    wait_count(node, "not_enabled", before.get("not_enabled", 0) + 1)


def test_a_resent_instance_is_one_task(node: Settings) -> None:
    ds = films.instance(pixels(seed=3), Modality="PX")
    before = counts(node)
    assert send(node, films.encode(ds, ExplicitVRLittleEndian)).Status == status.SUCCESS
    assert send(node, films.encode(ds, RLELossless)).Status == status.SUCCESS  # the sender's retry
    seen = wait_count(node, "resent", before.get("resent", 0) + 1)
    assert seen.get("accepted", 0) == before.get("accepted", 0) + 1
    assert tasks_of(node, PACS).count(ds.SOPInstanceUID) == 1
    # stored once: the first copy stays
    assert str(dataset(stored_image(node, PACS, ds.SOPInstanceUID)).file_meta.TransferSyntaxUID) == (
        ExplicitVRLittleEndian
    )


def raw_file(tmp_path: Path, named: Dataset, body: bytes) -> Path:
    """A DICOM file whose File Meta names `named`'s SOP class and instance, with `body` as its data
    set: pynetdicom sends a file as it is and its command names what the File Meta says."""
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = named.SOPClassUID
    meta.MediaStorageSOPInstanceUID = named.SOPInstanceUID
    out = DicomBytesIO()
    out.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=True)
    path = tmp_path / "sent.dcm"
    path.write_bytes(out.getvalue() + body)
    return path


def body_of(ds: Dataset) -> bytes:
    """The data set alone, Explicit VR Little Endian."""
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    write_dataset(out, ds)
    return out.getvalue()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("corrupt", status.CANNOT_UNDERSTAND),
        ("no-pixels", status.DATASET_MISMATCH),
        ("other-class", status.DATASET_MISMATCH),
        ("other-instance", status.BAD_INSTANCE_UID),
    ],
)
def test_bad_data_sets_fail_their_c_store(
    node: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, expected: int
) -> None:
    monkeypatch.setattr(pynetdicom._config, "STORE_SEND_CHUNKED_DATASET", True)  # the file as it is
    good = films.instance(pixels(), Modality="PX")
    same = {"Modality": "PX", "SOPInstanceUID": good.SOPInstanceUID}
    body = {
        "corrupt": body_of(good)[:300] + b"\xff\xff\xff\xff" * 64,
        "no-pixels": body_of(films.instance(pixels(), PixelData=None, **same)),
        "other-class": body_of(films.instance(pixels(), SOPClassUID=SecondaryCaptureImageStorage, **same)),
        "other-instance": body_of(films.instance(pixels(), Modality="PX")),
    }[case]
    path = raw_file(tmp_path, good, body)
    with associate(node) as assoc:
        answer = assoc.send_c_store(path)
    assert answer.Status == expected, case
    assert answer.ErrorComment and "Test^Patient" not in answer.ErrorComment
    assert stored_task(node, PACS, good.SOPInstanceUID) is None


def test_a_full_share_answers_out_of_resources(node: Settings) -> None:
    first, second = (films.instance(pixels(seed=s), Modality="PX") for s in (1, 2))
    assert send(node, films.encode(first), "TINY").Status == status.SUCCESS
    answer = send(node, films.encode(second), "TINY")
    assert answer.Status == status.OUT_OF_RESOURCES and "queue full" in answer.ErrorComment
    assert stored_task(node, "tiny", second.SOPInstanceUID) is None
    wait_count(node, "full", 1)


def test_an_oversized_data_set_aborts_the_association(node: Settings) -> None:
    big = dataset(films.encode(films.instance(pixels(3000, 3000), Modality="PX")))  # 9 MB > 8 MiB
    with associate(node) as assoc:
        answer = assoc.send_c_store(big)
        assert "Status" not in answer  # no answer: the node aborted the association
        deadline = time.monotonic() + 5
        while assoc.is_established and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not assoc.is_established
    assert stored_task(node, PACS, big.SOPInstanceUID) is None


def test_associations_beyond_the_limit_are_rejected(redis_server: RedisServer, processes: Processes) -> None:
    settings = node_settings(redis_server.url, dicom={"maximum_associations": 1})
    processes.start(["dicom"], settings, wait_line="dicom node ready")
    with associate(settings) as first:
        assert first.is_established
        with associate(settings) as second:
            assert second.is_rejected
            rejection = second.acceptor.primitive
            # rejected-transient, by the presentation layer: local limit exceeded
            assert (rejection.result, rejection.result_source, rejection.diagnostic) == (2, 3, 2)
    deadline = time.monotonic() + 5  # the first released: room again once its thread has ended
    while True:
        with associate(settings) as again:
            if again.is_established or time.monotonic() > deadline:
                assert again.is_established
                break
        time.sleep(0.1)
