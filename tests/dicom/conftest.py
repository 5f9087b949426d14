"""Fixtures of the DICOM node's tests: `orthanc` (a real Orthanc per test, tests/dicom/orthanc.py)."""

from tests.dicom.orthanc import orthanc_fixture  # noqa: F401 (the `orthanc` fixture)
