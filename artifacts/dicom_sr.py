"""The DICOM Structured Report of a result: a Comprehensive SR with a TID 1500 measurement report,
made with highdicom.

- ceph: one TID 1410 planar ROI group per landmark (SCOORD POINT on the referenced image, the
  landmark as finding type, its confidence as a measurement); one TID 1501 group with the
  measurements (UCUM units, norm mean and SD as statistical properties, interpretation as a
  coded evaluation), the eight ISBI classes and the summary as coded evaluations.
- pano: one planar ROI group per tooth (closed SCOORD POLYLINE, finding site = the SNOMED CT tooth,
  tracking identifier "tooth <FDI>", score and area); one per finding when the result has them;
  the missing teeth, the edentulous jaws (maxilla, mandible) and the teeth whose number is to be
  checked as coded evaluations of a dentition group.

Speed: highdicom checks every content item it makes (about 2.5 ms for a tooth's group), which was
most of the artifacts' time. It builds the first group of each shape; the next groups of that shape
are the same items given their own values in place ("restamped": text, UID, code, number,
coordinates) and encoded at once by `dicom_write`; likewise the ceph measurements. A test builds
every group with highdicom (`restamp=False`) and checks that the file is the same, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import highdicom as hd
import numpy as np
from highdicom.sr import (
    AlgorithmIdentification,
    CodedConcept,
    FindingSite,
    ImageRegion,
    Measurement,
    MeasurementsAndQualitativeEvaluations,
    PlanarROIMeasurementsAndQualitativeEvaluations,
    QualitativeEvaluation,
    SourceImageForRegion,
    TrackingIdentifier,
)
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.valuerep import DS

from artifacts import deidentify, dicom_write
from artifacts import dicom_codes as dc
from artifacts.dicom_study import MANUFACTURER, Study
from dentalai.task_json import model_label
from pipelines.pano.numbering import universal_to_fdi

CONFIDENCE = dc.local("confidence", "Landmark confidence")
SCORE = dc.local("score", "Detection score")
AREA = CodedConcept(codes.SCT.Area.value, "SCT", "Area")
# A measurement's norm is a population's (TID 311 with CID 226 "Population Statistical Descriptors"):
# mean and standard deviation of the population, not a sample's or a region's ("Standard Deviation",
# 386136009, is CID 7464's statistic of the pixel values in a region).
MEAN = CodedConcept(codes.SCT.MeanValueOfPopulation.value, "SCT", "Mean value of population")
SD = CodedConcept(codes.DCM.StandardDeviationOfPopulation.value, "DCM", "Standard deviation of population")
PROPERTY = hd.sr.RelationshipTypeValues.HAS_PROPERTIES
MISSING = dc.local("missing-tooth", "Missing tooth")
EDENTULOUS = dc.local("edentulous-jaw", "Edentulous jaw")
CHECK_NUMBER = dc.local("check-number", "Tooth number to be checked")
JAW = {"upper": CodedConcept(codes.SCT.Maxilla.value, "SCT", "Maxilla"),
       "lower": CodedConcept(codes.SCT.Mandible.value, "SCT", "Mandible")}
EMPTY = (dc.local("result", "Result"), dc.local("empty", "No landmarks or teeth found"))
PROCEDURE = {
    "ceph": dc.local("ceph", "Cephalometric analysis"),
    "pano": dc.local("pano", "Panoramic dental analysis"),
}


def structured_report(
    kind: str, data: Mapping[str, Any], study: Study, model: Mapping[str, Any], restamp: bool = True
) -> bytes:
    """The SR file bytes for a ceph or pano result dict (proto3 JSON). `restamp=False` builds every
    group with highdicom (`encode_groups`); the file is the same."""
    algorithm = AlgorithmIdentification(
        name=model.get("name") or "dentalai", version=model.get("version") or "0"
    )
    source = SourceImageForRegion(
        referenced_sop_class_uid=study.source.SOPClassUID,
        referenced_sop_instance_uid=study.source.SOPInstanceUID,
    )
    groups = _ceph(data) if kind == "ceph" else _pano(data)
    if not groups:  # TID 1500 needs a group: say that the result is empty
        groups = [Group(_empty, {})]
    items = encode_groups(groups, source, algorithm, restamp)
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(),
            name="dentalai",
            manufacturer_name=MANUFACTURER,
            model_name=model_label(model) or None,
        ),
    )
    # highdicom deep-copies, re-parses and searches the content a document is given, which cost
    # more than building it. The report is made around a one-evaluation placeholder group, the
    # document on a shell of its root (its attributes and first item, the language); then the
    # document takes the report's tree, whose Imaging Measurements container takes the groups
    # encoded above.
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=PROCEDURE[kind],
        imaging_measurements=[_empty({}, source, algorithm)],
    )
    root = report[0]
    shell = Dataset()
    for elem in root:
        if elem.keyword != "ContentSequence":
            shell.add(elem)
    shell.ContentSequence = root.ContentSequence[:1]
    sr = hd.sr.ComprehensiveSR(
        evidence=[study.source],
        content=shell,
        series_instance_uid=study.new_uid("report-series"),
        series_number=900,
        sop_instance_uid=study.new_uid("report"),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description="dentalai measurement report (machine-made, to be reviewed)",
    )
    # The private scheme of dicom_codes is declared, as PS3.3 C.12.1.1.2 asks for "99" schemes.
    scheme = Dataset()
    scheme.CodingSchemeDesignator = dc.SCHEME
    scheme.CodingSchemeName = dc.SCHEME_NAME
    scheme.CodingSchemeResponsibleOrganization = MANUFACTURER
    sr.CodingSchemeIdentificationSequence = [scheme]
    if not study.from_dicom:
        # Said in the document: the referenced image is our capture of a non-DICOM upload.
        sr.SeriesDescription = "dentalai report on a capture of a non-DICOM upload"
    elif study.input_capture is not None:
        sr.SeriesDescription = "dentalai report on a de-identified capture of the DICOM input"
    if study.pseudonyms is not None:
        deidentify.mark(sr, study.pseudonyms, structured=True)
    sr.ContentQualification = "PRODUCT"
    sr.ContentSequence = root.ContentSequence
    container = next(
        item for item in sr.ContentSequence if concept_key(item.ConceptNameCodeSequence[0]) == MEASUREMENTS
    )
    container["ContentSequence"] = dicom_write.raw_sequence("ContentSequence", items)
    return dicom_write.save(sr, "ContentSequence")


# A group's values by the concept name of the content item that holds each: (scheme, code value).
Values = dict[tuple[str, str], Any]
TRACKING_ID = ("DCM", codes.DCM.TrackingIdentifier.value)
TRACKING_UID = ("DCM", codes.DCM.TrackingUniqueIdentifier.value)
FINDING = ("DCM", codes.DCM.Finding.value)
SITE = ("SCT", codes.SCT.FindingSite.value)
REGION = ("DCM", codes.DCM.ImageRegion.value)
MEASUREMENTS = ("DCM", codes.DCM.ImagingMeasurements.value)


def concept_key(code: Any) -> tuple[str, str]:
    return (code.CodingSchemeDesignator, code.CodeValue)


def key(concept: CodedConcept) -> tuple[str, str]:
    return (concept.scheme_designator, concept.value)


# (values, source, algorithm, restamp) -> highdicom group; with restamp a builder may restamp
# repeated items of its own (the ceph analysis group's measurements).
Builder = Callable[[Values, SourceImageForRegion, AlgorithmIdentification, bool], Any]


@dataclass(frozen=True)
class Group:
    """One TID 1410/1501 group to write: the function that builds it with highdicom from its values.
    Groups with the same builder have the same structure and differ only in their values."""

    build: Builder
    values: Values


def encode_groups(
    groups: Sequence[Group], source: SourceImageForRegion, algorithm: AlgorithmIdentification,
    restamp: bool = True,
) -> list[bytes]:
    """The groups as encoded items of the Imaging Measurements container. highdicom builds the
    first group of each builder (about 2.5 ms for a tooth: it checks every item it makes); with
    `restamp` the next ones are that group given their own values in place (a few attribute writes)
    and encoded at once. tests/reports/test_dicom_artifacts.py checks that the file is the one
    highdicom's groups give, byte for byte."""
    built: dict[Builder, Dataset] = {}  # the first container of each builder
    stamps: dict[Builder, Stamp] = {}  # made when a builder's second group comes
    items = []
    for group in groups:
        if not restamp or group.build not in built:
            container = built[group.build] = group.build(group.values, source, algorithm, restamp)[0]
        else:
            if group.build not in stamps:
                stamps[group.build] = Stamp(built[group.build])
            container = stamps[group.build].apply(group.values)
        items.append(dicom_write.encode_item(container))
    return items


class Stamp:
    """A group container that highdicom built, whose content items take another group's values."""

    def __init__(self, container: Dataset) -> None:
        self.container = container
        self.items = {concept_key(i.ConceptNameCodeSequence[0]): i for i in container.ContentSequence}

    def apply(self, values: Values) -> Dataset:
        # As highdicom's content items store them (value_types.py: TextContentItem, UIDRefContentItem,
        # CodeContentItem, NumContentItem with a float, ScoordContentItem).
        for name, value in values.items():
            item = self.items[name]
            kind = item.ValueType
            if kind == "TEXT":
                item.TextValue = str(value)
            elif kind == "UIDREF":
                item.UID = value
            elif kind == "CODE":
                item.ConceptCodeSequence = [value]
            elif kind == "NUM":
                _set_num(item, value)
            elif kind == "SCOORD":
                item.GraphicData = value
            else:
                raise ValueError(f"no stamp for a {kind} item")
        return self.container


def _set_num(item: Dataset, value: float, unit: CodedConcept | None = None) -> None:
    """A NUM item's value (and unit), as highdicom's NumContentItem stores a float."""
    measured = item.MeasuredValueSequence[0]
    measured.NumericValue = DS(value, auto_format=True)
    measured.FloatingPointValue = value
    if unit is not None:
        measured.MeasurementUnitsCodeSequence = [unit]


def _empty(
    values: Values, source: SourceImageForRegion, algorithm: AlgorithmIdentification, restamp: bool = False
) -> Any:
    return MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(uid=hd.UID(), identifier="result"),
        algorithm_id=algorithm,
        qualitative_evaluations=[QualitativeEvaluation(EMPTY[0], EMPTY[1])],
    )


def planar(graphic_type: str, measured: Sequence[tuple[CodedConcept, str]], site: bool) -> Builder:
    """The builder of a TID 1410 planar ROI group: a region of `graphic_type`, the finding type,
    a finding site when `site`, and a TID 300 measurement per (concept, unit) of `measured`."""
    names = [(name, key(name), dc.unit(u)) for name, u in measured]

    def build(v: Values, source: SourceImageForRegion, algorithm: AlgorithmIdentification, _: bool) -> Any:
        return PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=TrackingIdentifier(uid=v[TRACKING_UID], identifier=v[TRACKING_ID]),
            referenced_region=ImageRegion(
                graphic_type=graphic_type, graphic_data=np.reshape(v[REGION], (-1, 2)), source_image=source
            ),
            finding_type=v[FINDING],
            finding_sites=[FindingSite(anatomic_location=v[SITE])] if site else None,
            algorithm_id=algorithm,
            measurements=[_num(name, v[k], unit) for name, k, unit in names],
        )

    return build


LANDMARK = planar("POINT", [(CONFIDENCE, "ratio")], site=False)
TOOTH = planar("POLYLINE", [(SCORE, "ratio"), (AREA, "px2")], site=True)
# Findings: with or without a tooth (site) and an area in mm2 (spacing known).
FINDINGS = {
    (site, area): planar("POLYLINE", [(SCORE, "ratio")] + ([(AREA, "mm2")] if area else []), site)
    for site in (False, True)
    for area in (False, True)
}


def _planar_values(tracking: str, finding: CodedConcept, points: np.ndarray) -> Values:
    return {TRACKING_ID: tracking, TRACKING_UID: hd.UID(), FINDING: finding, REGION: points.ravel().tolist()}


def _ceph(data: Mapping[str, Any]) -> list[Group]:
    groups = [
        Group(LANDMARK, {
            **_planar_values(
                f"landmark {lm['id']}",
                dc.local(lm["id"], lm.get("name") or lm["id"]),
                np.array([float(lm["x"]), float(lm["y"])]),
            ),
            key(CONFIDENCE): float(lm.get("confidence", 0.0)),
        })
        for lm in data.get("landmarks") or []
    ]
    measured = [_measured(m) for m in data.get("measurements") or []]
    evaluations = [
        QualitativeEvaluation(
            dc.local(f"{m['id']}-i", f"{m.get('name') or m['id']} interpretation"),
            dc.local(m["interpretation"], m["interpretation"]),
        )
        for m in data.get("measurements") or []
        if m.get("interpretation")
    ]
    for c in data.get("classifications") or []:
        label = c.get("label") or str(c.get("category", ""))
        evaluations.append(
            QualitativeEvaluation(
                dc.local(f"class-{c['id']}", f"{c.get('name') or c['id']} class"),
                dc.local(f"{c['id']}-{c.get('category', 0)}", label),
            )
        )
    summary = data.get("summary") or {}
    for name, meaning in (("skeletalClass", "Skeletal class"), ("verticalPattern", "Vertical pattern")):
        if summary.get(name):
            evaluations.append(
                QualitativeEvaluation(dc.local(name, meaning), dc.local(summary[name], summary[name]))
            )
    if measured or evaluations:

        def analysis(
            v: Values, source: SourceImageForRegion, algorithm: AlgorithmIdentification, restamp: bool
        ) -> Any:
            group = MeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(uid=hd.UID(), identifier="cephalometric analysis"),
                algorithm_id=algorithm,
                measurements=[_measurement(m) for m in (measured[:1] if restamp else measured)] or None,
                qualitative_evaluations=evaluations or None,
            )
            if restamp and len(measured) > 1:
                _restamp_measurements(group[0], measured)
            return group

        groups.append(Group(analysis, {}))
    return groups


def _num(name: CodedConcept, value: float, unit: CodedConcept) -> Measurement:
    """A TID 300 measurement; its group names the algorithm once for all its items."""
    return Measurement(name=name, value=value, unit=unit)


@dataclass(frozen=True)
class Measured:
    """A ceph measurement as the SR writes it (TID 300, with the population norm as TID 310
    statistical properties when the norm has an SD)."""

    name: CodedConcept
    value: float
    unit: CodedConcept
    norm: tuple[float, float] | None  # mean, SD


def _measured(m: Mapping[str, Any]) -> Measured:
    norm = m.get("norm") or {}
    return Measured(
        dc.local(m["id"], m.get("name") or m["id"]),
        float(m["value"]),
        dc.unit(m.get("unit", "")),
        (float(norm.get("mean", 0.0)), float(norm["sd"])) if norm.get("sd") else None,
    )


def _measurement(m: Measured) -> Measurement:
    properties = None
    if m.norm:
        values = [
            hd.sr.NumContentItem(name=name, value=value, unit=m.unit, relationship_type=PROPERTY)
            for name, value in zip((MEAN, SD), m.norm, strict=True)
        ]
        properties = hd.sr.MeasurementProperties(
            measurement_statistical_properties=hd.sr.MeasurementStatisticalProperties(
                values=values, description="population norm"
            ),
        )
    return Measurement(name=m.name, value=m.value, unit=m.unit, properties=properties)


def _restamp_measurements(container: Dataset, measured: Sequence[Measured]) -> None:
    """The group's one measurement item (built from measured[0]) becomes all of them: each a
    restamped item of the same shape (with or without a norm), encoded at once; the container's
    content is then the encoded items (`dicom_write.raw_sequence`)."""
    items = list(container.ContentSequence)
    at = next(k for k, item in enumerate(items) if item.ValueType == "NUM")
    templates = {measured[0].norm is not None: items[at]}
    encoded = [dicom_write.encode_item(items[at])]
    for m in measured[1:]:
        item = templates.get(m.norm is not None)
        if item is None:
            item = templates[m.norm is not None] = _measurement(m)[0]
        else:
            item.ConceptNameCodeSequence = [m.name]
            _set_num(item, m.value, m.unit)
            for child, value in zip(item.ContentSequence, m.norm or (), strict=False):
                _set_num(child, value, m.unit)  # Mean and Standard Deviation, in that order
        encoded.append(dicom_write.encode_item(item))
    head = [dicom_write.encode_item(item) for item in items[:at]]
    tail = [dicom_write.encode_item(item) for item in items[at + 1:]]
    container["ContentSequence"] = dicom_write.raw_sequence("ContentSequence", head + encoded + tail)


def _closed(points: Sequence[Sequence[float]]) -> np.ndarray | None:
    pts = [(float(p[0]), float(p[1])) for p in points if len(p) >= 2]
    if len(pts) < 3:
        return None
    if pts[0] != pts[-1]:
        pts.append(pts[0])  # a closed POLYLINE repeats its first point (PS3.3 C.18.6.1.2)
    return np.array(pts)


def _box(bbox: Sequence[float]) -> np.ndarray | None:
    if len(bbox) != 4:
        return None
    x, y, w, h = (float(v) for v in bbox)
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]])


def _outline(item: Mapping[str, Any]) -> np.ndarray | None:
    """A tooth's or finding's closed outline, else its box, else None (not written)."""
    outline = _closed(item.get("polygon") or [])
    return outline if outline is not None else _box(item.get("bbox") or [])


def _pano(data: Mapping[str, Any]) -> list[Group]:
    groups: list[Group] = []
    for t in data.get("teeth") or []:
        outline = _outline(t)
        if outline is None:
            continue
        fdi = int(t["fdi"])
        groups.append(Group(TOOTH, {
            **_planar_values(f"tooth {fdi}", dc.TOOTH, outline),
            SITE: dc.tooth(fdi),
            key(SCORE): float(t.get("score", 0.0)),
            key(AREA): float(t.get("areaPx", 0.0)),
        }))
    for i, f in enumerate(data.get("findings") or []):
        outline = _outline(f)
        if outline is None:
            continue
        fdi = int(f.get("fdi") or 0)
        kind = str(f.get("type") or "finding")
        values = {
            **_planar_values(f"finding {i + 1} {kind}", dc.local(kind, kind), outline),
            key(SCORE): float(f.get("score", 0.0)),
        }
        if fdi:
            values[SITE] = dc.tooth(fdi)
        if f.get("areaMm2"):
            values[key(AREA)] = float(f["areaMm2"])
        groups.append(Group(FINDINGS[(bool(fdi), bool(f.get("areaMm2")))], values))
    universal = data.get("numbering") == "UNIVERSAL"
    missing = [universal_to_fdi(int(n)) if universal else int(n) for n in data.get("missingTeeth") or []]
    edentulous = [j for j in (data.get("summary") or {}).get("edentulousJaws") or [] if j in JAW]
    check = [int(t["fdi"]) for t in data.get("teeth") or [] if t.get("checkNumber")]
    if missing or edentulous or check:
        evaluations = ([(EDENTULOUS, JAW[j]) for j in edentulous] + [(MISSING, dc.tooth(f)) for f in missing]
                       + [(CHECK_NUMBER, dc.tooth(f)) for f in check])

        def dentition(
            v: Values, source: SourceImageForRegion, algorithm: AlgorithmIdentification, restamp: bool
        ) -> Any:
            return MeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(uid=hd.UID(), identifier="dentition"),
                algorithm_id=algorithm,
                qualitative_evaluations=[QualitativeEvaluation(name, value) for name, value in evaluations],
            )

        groups.append(Group(dentition, {}))
    return groups
