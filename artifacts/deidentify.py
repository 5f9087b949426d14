"""De-identified DICOM artifacts: DICOM PS3.15 Annex E, Basic Application Level Confidentiality
Profile, with the Clean Descriptors and Clean Structured Content options, for the tasks whose
patient data policy asks for it (`artifacts.make.Source.deidentify`).

The files are made, not scrubbed: with de-identification on, nothing of a DICOM input's header
reaches them except its UIDs, and those only through a one-way replacement. The input is
referenced through a Secondary Capture of its pixels made here (image.dcm), as for a PNG upload,
so the SR's coordinates point at an instance of the same de-identified set. What Table E.1-1 says
for each attribute these files carry, and what is done:

- PatientName, PatientID, StudyID (Z, a dummy allowed): a per-task pseudonym
  (`Pseudonyms.patient`), the same in every file of the task.
- PatientBirthDate, PatientSex, AccessionNumber, ReferringPhysicianName (Z): empty.
- StudyDate, StudyTime (Z), ContentDate, ContentTime (Z/D; type 1 in the SR): the dummies
  `DUMMY_DATE`, `DUMMY_TIME` (a PACS sorts and a DICOMDIR indexes by them).
- InstanceCreationDate/Time, SeriesDate/Time, Date/TimeOfSecondaryCapture, ContributionDateTime,
  TimezoneOffsetFromUTC (X): removed.
- Study, Series and SOP Instance UIDs, the SR's references to them (U): `Pseudonyms.replace` for
  the input's UIDs, `Pseudonyms.new` for the instances made here.
- SeriesDescription, DerivationDescription, ContributionDescription (X; C with the Clean
  Descriptors option): fixed texts of this package, nothing taken from the input.
- The SR's ContentSequence (C with the Clean Structured Content option): made from the result only
  (measurements, codes, the model's name and version).
- Institution, operator and physician names, OtherPatientIDs, private attributes and the rest of
  the table (X): never written, as nothing else is copied from the input.

Not applied: Clean Pixel Data. Text burned into the film itself (some panoramic units print the
patient's name on it) stays in image.dcm, overlay.dcm, the overlay PNG and the PDF; the overlay
keeps BurnedInAnnotation YES.

UIDs are replaced consistently within a task (one input UID, one replacement in every file) and
are the same when the task is made again (a retry re-sends the same instances, so a PACS does not
store them twice). They are name-based UUIDs (`2.25.` + the UUID as an integer, PS3.5 B.2) of a
digest of the task's owner, its taskId and the input bytes: the owner because two clients may use
the same taskId; the input's digest because a taskId may itself name the patient and is easy to
guess, and a replacement computed from it alone could be reversed by guessing.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from pydicom.dataset import Dataset

# A fixed namespace of our own for the name-based UUIDs (uuid5).
NAMESPACE = uuid.UUID("7c1f2b8e-3f43-5a0e-9d55-2f0d7b0c6a11")
DUMMY_DATE = "19000101"
DUMMY_TIME = "000000"
# Dates and times that Table E.1-1 says to remove (X) where they are type 3, as in these files.
REMOVED = frozenset(
    {
        "InstanceCreationDate",
        "InstanceCreationTime",
        "SeriesDate",
        "SeriesTime",
        "AcquisitionDate",
        "AcquisitionTime",
        "AcquisitionDateTime",
        "DateOfSecondaryCapture",
        "TimeOfSecondaryCapture",
        "ContributionDateTime",
        "TimezoneOffsetFromUTC",
    }
)
# Z: present (type 2 in these IODs), empty.
EMPTIED = ("PatientBirthDate", "PatientSex", "AccessionNumber", "ReferringPhysicianName")
# CID 7050 (De-identification Method): the profile and the options applied.
BASIC = ("113100", "Basic Application Confidentiality Profile")
CLEAN_STRUCTURED_CONTENT = ("113104", "Clean Structured Content Option")
CLEAN_DESCRIPTORS = ("113105", "Clean Descriptors Option")


@dataclass(frozen=True)
class Pseudonyms:
    """The replacement UIDs and the patient pseudonym of one task's de-identified files."""

    key: str  # hex digest of (owner, taskId, input bytes)

    @classmethod
    def for_task(cls, owner: str, task_id: str, raw: bytes) -> Pseudonyms:
        digest = hashlib.sha256()
        for part in (owner.encode(), task_id.encode(), hashlib.sha256(raw).digest()):
            digest.update(len(part).to_bytes(4, "big") + part)
        return cls(digest.hexdigest())

    def _uid(self, name: str) -> str:
        return f"2.25.{uuid.uuid5(NAMESPACE, f'{self.key}/{name}').int}"

    def replace(self, uid: str) -> str:
        """The replacement of a UID of the input (U)."""
        return self._uid(f"input:{uid}")

    def new(self, role: str) -> str:
        """The UID of an instance or series made here ("report", "overlay-series", ...)."""
        return self._uid(f"made:{role}")

    @property
    def patient(self) -> str:
        """PatientID and StudyID (SH: 16 characters at most) of the task's files: no patient's,
        one per task."""
        return "ANON" + hashlib.sha256(f"{self.key}/patient".encode()).hexdigest()[:12].upper()


def mark(ds: Dataset, pseudonyms: Pseudonyms, structured: bool = False) -> None:
    """Give a file made here the profile's values for the patient and study attributes and dates,
    and say that it is de-identified (Patient Identity Removed, De-identification Method and its
    codes). `structured`: an SR, whose content tree is clean by construction (it is not walked:
    it holds no dates)."""
    _dates(ds)
    for keyword in EMPTIED:
        setattr(ds, keyword, "")
    ds.PatientName = f"{pseudonyms.patient}^"  # one component ends in "^" (PS3.5 6.2.1.2)
    ds.PatientID = ds.StudyID = pseudonyms.patient
    ds.StudyDate, ds.StudyTime = DUMMY_DATE, DUMMY_TIME
    methods = [BASIC, *([CLEAN_STRUCTURED_CONTENT] if structured else []), CLEAN_DESCRIPTORS]
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = [meaning for _, meaning in methods]
    items = []
    for value, meaning in methods:
        code = Dataset()
        code.CodeValue = value
        code.CodingSchemeDesignator = "DCM"
        code.CodeMeaning = meaning
        items.append(code)
    ds.DeidentificationMethodCodeSequence = items


def _dates(ds: Dataset) -> None:
    """Every DA, TM and DT element, in sequences too (but not an SR's content tree): removed when
    the profile says X, else a non-empty value becomes the dummy."""
    for elem in list(ds):
        if elem.VR == "SQ":
            if elem.keyword != "ContentSequence":
                for item in elem.value:
                    _dates(item)
        elif elem.keyword in REMOVED:
            del ds[elem.tag]
        elif elem.VR in ("DA", "TM", "DT") and not elem.is_empty:
            elem.value = {"DA": DUMMY_DATE, "TM": DUMMY_TIME, "DT": DUMMY_DATE + DUMMY_TIME}[elem.VR]
