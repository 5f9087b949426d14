"""Exports to a real Orthanc: a succeeded task's SR and Secondary Capture by C-STORE and by
STOW-RS, into the source study; Orthanc down while they are due; a destination that refuses.

The exporter runs in-process (the dispatcher process's loop) against a real redis-server; the
schedule is the callbacks' (tests/conftest.py: retry_delays_s [0.2, 0.2], jitter 0) unless a test
sets its own."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pydicom

from dentalai.config import Settings
from dentalai.task_json import task_dict
from dentalai.v1 import task_pb2
from tests.dicom.orthanc import Orthanc
from tests.exports.helpers import (
    Harness,
    Results,
    dciodvfy_errors,
    restart,
    running_exporter,
    study_instances,
)

FINAL = {task_pb2.EXPORT_DELIVERED, task_pb2.EXPORT_FAILED, task_pb2.EXPORT_EXHAUSTED}


def referenced_sop_uids(ds: pydicom.Dataset) -> set[str]:
    """Every ReferencedSOPInstanceUID anywhere in a data set (content tree and evidence)."""
    found: set[str] = set()
    for element in ds.iterall():
        if element.keyword == "ReferencedSOPInstanceUID":
            found.add(str(element.value))
    return found


async def test_cstore_puts_the_sr_and_sc_into_the_source_study(
    export_settings: Settings, harness: Harness, orthanc: Orthanc, results: Results, tmp_path: Path
) -> None:
    source_id = orthanc.upload(results.source)  # the PACS already holds the radiograph
    ref = await harness.finished(results.files, "pacs")
    async with running_exporter(export_settings):
        info = await harness.wait_export(ref, FINAL)
    assert info.state == task_pb2.EXPORT_DELIVERED, info
    assert info.attempts == 1 and info.last_status_code == 0 and info.HasField("delivered_at")
    assert list(info.files) == ["report.dcm", "overlay.dcm"]
    study = study_instances(orthanc, results.header.StudyInstanceUID)
    source_uid = str(results.header.SOPInstanceUID)
    sr_uid, sc_uid = results.uid("report.dcm"), results.uid("overlay.dcm")
    assert set(study) == {source_uid, sr_uid, sc_uid}
    assert study[source_uid]["orthancId"] == source_id
    assert study[sr_uid]["Modality"] == "SR"
    assert study[sc_uid]["SOPClassUID"] == pydicom.uid.SecondaryCaptureImageStorage
    for name, uid in (("report.dcm", sr_uid), ("overlay.dcm", sc_uid)):
        fetched = orthanc.instance_file(study[uid]["orthancId"])
        assert not dciodvfy_errors(tmp_path, name, fetched), name
    sr = pydicom.dcmread(io.BytesIO(orthanc.instance_file(study[sr_uid]["orthancId"])))
    assert source_uid in referenced_sop_uids(sr)  # coordinates and evidence point at the radiograph
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == results.header.StudyInstanceUID
    # GET shows it (the REST answer is task_dict of the stored task).
    shown = task_dict(await harness.store.get(ref))["export"]
    assert shown["destination"] == "pacs" and shown["state"] == "EXPORT_DELIVERED" and shown["attempts"] == 1
    assert await harness.scheduled() == []
    assert await harness.stats() == {"delivered": 1, "retry": 0, "failed": 0, "exhausted": 0}


async def test_stowrs_puts_both_instances_into_the_source_study(
    export_settings: Settings, harness: Harness, orthanc: Orthanc, results: Results
) -> None:
    ref = await harness.finished(results.files, "pacs-web")
    async with running_exporter(export_settings):
        info = await harness.wait_export(ref, FINAL)
    assert info.state == task_pb2.EXPORT_DELIVERED and info.last_status_code == 200, info
    study = study_instances(orthanc, results.header.StudyInstanceUID)
    assert set(study) == {results.uid("report.dcm"), results.uid("overlay.dcm")}
    for name in ("report.dcm", "overlay.dcm"):  # stored as sent, byte for byte
        assert orthanc.instance_file(study[results.uid(name)]["orthancId"]) == results.files[name]


async def test_orthanc_down_while_due_then_up_delivers_one_copy(
    export_settings: Settings, orthanc: Orthanc, results: Results
) -> None:
    settings = export_settings.with_overrides(callbacks={"retry_delays_s": [0.3, 1, 2, 4, 8]})
    harness = Harness(settings)
    orthanc.stop()
    try:
        refs = [await harness.finished(results.files, name) for name in ("pacs", "pacs-web")]
        async with running_exporter(settings) as exporter:
            for ref in refs:  # refused connections are retried on the callbacks' schedule
                info = await harness.wait_export(ref, {task_pb2.EXPORT_PENDING}, attempts=2)
                assert info.last_error and info.last_status_code == 0 and info.HasField("next_attempt_at")
            restart(orthanc)
            delivered = [await harness.wait_export(ref, FINAL) for ref in refs]
            assert [i.state for i in delivered] == [task_pb2.EXPORT_DELIVERED] * 2, delivered
            # A second delivery of the same result (a dispatcher that died before settling) sends
            # the same instances again: the PACS files them once.
            assert (await exporter.send(refs[0], delivered[0])).outcome == "delivered"
    finally:
        if orthanc.proc is None:
            restart(orthanc)
    for name in ("report.dcm", "overlay.dcm"):
        assert len(orthanc.find_instances(SOPInstanceUID=results.uid(name))) == 1, name
    assert len(orthanc.instances()) == 2
    stats = await harness.stats()
    assert stats["delivered"] == 2 and stats["retry"] >= 4 and stats["failed"] == stats["exhausted"] == 0


async def test_refusing_destinations_end_failed_at_once(
    export_settings: Settings, harness: Harness, orthanc: Orthanc, results: Results
) -> None:
    wrong_ae = await harness.finished(results.files, "wrong-ae")  # Orthanc checks the called AE title
    no_stow = await harness.finished(results.files, "no-stow")  # 404: no STOW-RS service there
    async with running_exporter(export_settings):
        first = await harness.wait_export(wrong_ae, FINAL)
        second = await harness.wait_export(no_stow, FINAL)
        await asyncio.sleep(0.5)  # past the first retry delay: nothing more is tried
    assert first.state == task_pb2.EXPORT_FAILED and "association rejected" in first.last_error, first
    assert second.state == task_pb2.EXPORT_FAILED and second.last_status_code == 404, second
    for ref in (wrong_ae, no_stow):
        shown = task_dict(await harness.store.get(ref))["export"]
        assert shown["state"] == "EXPORT_FAILED" and shown["attempts"] == 1 and "nextAttemptAt" not in shown
    assert orthanc.instances() == []
    assert await harness.scheduled() == []
    assert await harness.stats() == {"delivered": 0, "retry": 0, "failed": 2, "exhausted": 0}
