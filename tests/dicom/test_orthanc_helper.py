"""The Orthanc test helper itself: it starts, stores, echoes and C-STOREs (to itself)."""

from __future__ import annotations

import numpy as np
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.dicom.orthanc import Orthanc
from tests.security.dicom_samples import native


def test_orthanc_stores_echoes_and_sends(orthanc: Orthanc) -> None:
    uid = generate_uid()
    data = native(
        np.zeros((300, 320), np.uint8), ExplicitVRLittleEndian, PatientID="X",
        StudyInstanceUID=generate_uid(), SeriesInstanceUID=generate_uid(), SOPInstanceUID=uid,
    )  # fmt: skip
    instance = orthanc.upload(data)
    assert orthanc.find_instances(SOPInstanceUID=uid) == [instance]
    orthanc.add_modality("self", orthanc.aet, "127.0.0.1", orthanc.dicom_port)
    assert orthanc.echo("self")
    answer = orthanc.store_to("self", [instance])
    assert answer["FailedInstancesCount"] == 0 and answer["InstancesCount"] == 1
    assert orthanc.rest("GET", "/dicom-web/studies").json()  # the DICOMweb plugin answers QIDO-RS
