"""The DICOM Structured Report of a result: a Comprehensive SR with a TID 1500 measurement report,
made with highdicom.

- ceph: one TID 1410 planar ROI group per landmark (SCOORD POINT on the referenced image, the
  landmark as finding type, its confidence as a measurement); one TID 1501 group with the
  measurements (UCUM units, norm mean and SD as statistical properties, interpretation as a
  coded evaluation), the eight ISBI classes and the summary as coded evaluations.
- pano: one planar ROI group per tooth (closed SCOORD POLYLINE, finding site = the SNOMED CT tooth,
  tracking identifier "tooth <FDI>", score and area); one per finding when the result has them;
  the missing teeth as coded evaluations of a dentition group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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

from artifacts import dicom_codes as dc
from artifacts import dicom_write
from artifacts.dicom_study import MANUFACTURER, Study
from dentalai.task_json import model_label
from pipelines.pano.numbering import universal_to_fdi

CONFIDENCE = dc.local("confidence", "Landmark confidence")
SCORE = dc.local("score", "Detection score")
AREA = CodedConcept(codes.SCT.Area.value, "SCT", "Area")
MISSING = dc.local("missing-tooth", "Missing tooth")
EMPTY = (dc.local("result", "Result"), dc.local("empty", "No landmarks or teeth found"))
PROCEDURE = {
    "ceph": dc.local("ceph", "Cephalometric analysis"),
    "pano": dc.local("pano", "Panoramic dental analysis"),
}


def structured_report(kind: str, data: Mapping[str, Any], study: Study, model: Mapping[str, Any]) -> bytes:
    """The SR file bytes for a ceph or pano result dict (proto3 JSON)."""
    algorithm = AlgorithmIdentification(
        name=model.get("name") or "dentalai", version=model.get("version") or "0"
    )
    source = SourceImageForRegion(
        referenced_sop_class_uid=study.source.SOPClassUID,
        referenced_sop_instance_uid=study.source.SOPInstanceUID,
    )
    groups = _ceph(data, source, algorithm) if kind == "ceph" else _pano(data, source, algorithm)
    if not groups:  # TID 1500 needs a group: say that the result is empty
        groups = [
            MeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(uid=hd.UID(), identifier="result"),
                algorithm_id=algorithm,
                qualitative_evaluations=[QualitativeEvaluation(EMPTY[0], EMPTY[1])],
            )
        ]
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(),
            name="dentalai",
            manufacturer_name=MANUFACTURER,
            model_name=model_label(model) or None,
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=PROCEDURE[kind],
        imaging_measurements=groups,
    )
    # highdicom deep-copies and re-parses the content it is given and searches it for references,
    # which costs four times building the tree for 20-40 groups. The document is made on a shell
    # of the same report (template, observer, procedure: small), then takes the tree built above,
    # item by item through highdicom's templates; its only reference is the evidence given here.
    shell = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=PROCEDURE[kind],
        imaging_measurements=groups[:1],
    )
    sr = hd.sr.ComprehensiveSR(
        evidence=[study.source],
        content=shell[0],
        series_instance_uid=hd.UID(),
        series_number=900,
        sop_instance_uid=hd.UID(),
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
    sr.ContentQualification = "PRODUCT"
    sr.ContentSequence = report[0].ContentSequence
    return dicom_write.save(sr, "ContentSequence")


def _ceph(
    data: Mapping[str, Any], source: SourceImageForRegion, algorithm: AlgorithmIdentification
) -> list[Any]:
    groups: list[Any] = []
    for lm in data.get("landmarks") or []:
        region = ImageRegion(
            graphic_type="POINT",
            graphic_data=np.array([[float(lm["x"]), float(lm["y"])]]),
            source_image=source,
        )
        groups.append(
            PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(uid=hd.UID(), identifier=f"landmark {lm['id']}"),
                referenced_region=region,
                finding_type=dc.local(lm["id"], lm.get("name") or lm["id"]),
                algorithm_id=algorithm,
                measurements=[_num(CONFIDENCE, float(lm.get("confidence", 0.0)), dc.unit("ratio"))],
            )
        )
    measurements = [_measurement(m) for m in data.get("measurements") or []]
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
    for key, meaning in (("skeletalClass", "Skeletal class"), ("verticalPattern", "Vertical pattern")):
        if summary.get(key):
            evaluations.append(
                QualitativeEvaluation(dc.local(key, meaning), dc.local(summary[key], summary[key]))
            )
    if measurements or evaluations:
        groups.append(
            MeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(uid=hd.UID(), identifier="cephalometric analysis"),
                algorithm_id=algorithm,
                measurements=measurements or None,
                qualitative_evaluations=evaluations or None,
            )
        )
    return groups


def _num(name: CodedConcept, value: float, unit: CodedConcept) -> Measurement:
    """A TID 300 measurement; its group names the algorithm once for all its items."""
    return Measurement(name=name, value=value, unit=unit)


def _measurement(m: Mapping[str, Any]) -> Measurement:
    norm = m.get("norm") or {}
    properties = None
    if norm.get("sd"):
        values = [
            hd.sr.NumContentItem(
                name=codes.SCT.Mean,
                value=float(norm.get("mean", 0.0)),
                unit=dc.unit(m.get("unit", "")),
                relationship_type=hd.sr.RelationshipTypeValues.HAS_PROPERTIES,
            ),
            hd.sr.NumContentItem(
                name=CodedConcept("386136009", "SCT", "Standard Deviation"),
                value=float(norm["sd"]),
                unit=dc.unit(m.get("unit", "")),
                relationship_type=hd.sr.RelationshipTypeValues.HAS_PROPERTIES,
            ),
        ]
        properties = hd.sr.MeasurementProperties(
            measurement_statistical_properties=hd.sr.MeasurementStatisticalProperties(
                values=values, description="population norm"
            ),
        )
    return Measurement(
        name=dc.local(m["id"], m.get("name") or m["id"]),
        value=float(m["value"]),
        unit=dc.unit(m.get("unit", "")),
        properties=properties,
    )


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


def _pano(
    data: Mapping[str, Any], source: SourceImageForRegion, algorithm: AlgorithmIdentification
) -> list[Any]:
    groups: list[Any] = []
    for t in data.get("teeth") or []:
        outline = _closed(t.get("polygon") or [])
        outline = outline if outline is not None else _box(t.get("bbox") or [])
        if outline is None:
            continue
        fdi = int(t["fdi"])
        groups.append(
            PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(uid=hd.UID(), identifier=f"tooth {fdi}"),
                referenced_region=ImageRegion(
                    graphic_type="POLYLINE", graphic_data=outline, source_image=source
                ),
                finding_type=dc.TOOTH,
                finding_sites=[FindingSite(anatomic_location=dc.tooth(fdi))],
                algorithm_id=algorithm,
                measurements=[
                    _num(SCORE, float(t.get("score", 0.0)), dc.unit("ratio")),
                    _num(AREA, float(t.get("areaPx", 0.0)), dc.unit("px2")),
                ],
            )
        )
    for i, f in enumerate(data.get("findings") or []):
        outline = _closed(f.get("polygon") or [])
        outline = outline if outline is not None else _box(f.get("bbox") or [])
        if outline is None:
            continue
        fdi = int(f.get("fdi") or 0)
        measurements = [_num(SCORE, float(f.get("score", 0.0)), dc.unit("ratio"))]
        if f.get("areaMm2"):
            measurements.append(_num(AREA, float(f["areaMm2"]), dc.unit("mm2")))
        kind = str(f.get("type") or "finding")
        groups.append(
            PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(uid=hd.UID(), identifier=f"finding {i + 1} {kind}"),
                referenced_region=ImageRegion(
                    graphic_type="POLYLINE", graphic_data=outline, source_image=source
                ),
                finding_type=dc.local(kind, kind),
                finding_sites=[FindingSite(anatomic_location=dc.tooth(fdi))] if fdi else None,
                algorithm_id=algorithm,
                measurements=measurements,
            )
        )
    universal = data.get("numbering") == "UNIVERSAL"
    missing = [universal_to_fdi(int(n)) if universal else int(n) for n in data.get("missingTeeth") or []]
    if missing:
        groups.append(
            MeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(uid=hd.UID(), identifier="dentition"),
                algorithm_id=algorithm,
                qualitative_evaluations=[QualitativeEvaluation(MISSING, dc.tooth(f)) for f in missing],
            )
        )
    return groups
