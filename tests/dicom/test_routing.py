"""Routing by tags (dicom_node/routing.py) with the shipped rules, and the dicom section's checks:
the tag values are those real devices send (PS3.3: Modality PX "Panoramic X-Ray"; ViewPosition
defined terms LL/RL "left/right lateral", AP/PA; BodyPartExamined SKULL, HEAD, JAW)."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from dentalai.config import ConfigError, DicomRule, load_config
from dicom_node.routing import Router
from dicom_node.scp import ConfigProblem, check
from pipelines.registry import TASK_TYPES
from tests.conftest import api_key, client_entry, make_settings

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR CS")
DEFAULTS = load_config(environ={})
LATERAL = ("ceph-lateral-skull", "ceph")
BY_NAME = ("ceph-series-description", "ceph")
NO_REDIS = "redis://127.0.0.1:1/0"


def tags(**values: object) -> Dataset:
    ds = Dataset()
    for key, value in values.items():
        setattr(ds, key, value)
    return ds


def route(**values: object) -> tuple[str, str] | None:
    found = Router(DEFAULTS.dicom.rules, TASK_TYPES).route(tags(**values))
    return (found.rule, found.task_type) if found else None


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"Modality": "PX"}, ("pano", "pano")),
        ({"Modality": "px ", "BodyPartExamined": "JAW"}, ("pano", "pano")),  # case and padding
        ({"Modality": "DX", "BodyPartExamined": "SKULL", "ViewPosition": "LL"}, LATERAL),
        ({"Modality": "CR", "BodyPartExamined": "HEAD", "ViewPosition": "RL"}, LATERAL),
        # a ceph unit that labels its films PX, and a lateral view: ceph before pano
        ({"Modality": "PX", "BodyPartExamined": "SKULL", "ViewPosition": "LATERAL"}, LATERAL),
        ({"Modality": "DX", "SeriesDescription": "Ceph lateral"}, BY_NAME),
        ({"Modality": "PX", "SeriesDescription": "CEPHALOMETRIC"}, BY_NAME),
        ({"Modality": "DX", "SeriesDescription": "LAT_CEPH"}, BY_NAME),
        # frontal cephs are not lateral ones: excluded, then not a pano either
        ({"Modality": "DX", "SeriesDescription": "PA CEPH"}, None),
        ({"Modality": "DX", "SeriesDescription": "Ceph PA"}, None),
        ({"Modality": "DX", "SeriesDescription": "CEPH", "ViewPosition": "PA"}, None),
        ({"Modality": "DX", "BodyPartExamined": "SKULL", "ViewPosition": "PA"}, None),
        ({"Modality": "DX", "BodyPartExamined": "CHEST", "ViewPosition": "LL"}, None),
        ({"Modality": "IO"}, None),
        ({"Modality": "OT"}, None),
        ({}, None),
    ],
)
def test_shipped_rules(values: dict, expected: tuple[str, str] | None) -> None:
    assert route(**values) == expected


def test_patterns_multi_values_regex_and_exclude() -> None:
    rule = DicomRule(
        name="r", task_type="pano", options={"toothNumbering": "UNIVERSAL", "findings": ["caries"]},
        match={"ImageType": "DERIVED", "Manufacturer": ["re:acme (xr|px)-[0-9]+", "Other*"]},
        exclude={"SeriesDescription": "*test*"},
    )  # fmt: skip
    router = Router([rule], TASK_TYPES)
    found = router.route(
        tags(ImageType=MultiValue(str, ["ORIGINAL", "derived"]), Manufacturer="ACME PX-300")
    )
    assert found is not None and found.options.tooth_numbering == 2
    assert list(found.options.findings) == ["caries"]
    assert router.route(tags(ImageType=["DERIVED"], Manufacturer="ACME PX-300b")) is None  # whole value
    assert router.route(tags(ImageType=["DERIVED"], Manufacturer="others inc")) is not None  # glob
    assert router.route(tags(ImageType=["DERIVED"], Manufacturer="Other", SeriesDescription="A TEST")) is None
    assert router.route(tags(Manufacturer="Other")) is None  # absent tag matches nothing


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"match": {"Modalty": "PX"}}, "'Modalty' is not a DICOM keyword"),
        ({"task_type": "bitewing"}, "task_type 'bitewing' is not one of ceph, pano"),
        ({"options": {"toothNumbering": "ROMAN"}}, "options"),
        ({"options": {"colour": "red"}}, "options"),
    ],
)
def test_rules_checked_when_the_node_starts(rule: dict, message: str) -> None:
    entry = {"name": "bad", "match": {"Modality": "PX"}, "task_type": "pano", **rule}
    callers = [{"ae_title": "SENDER", "client": "dev"}]
    settings = make_settings(NO_REDIS, dicom={"callers": callers, "rules": [entry]})
    with pytest.raises(ConfigProblem, match=message):
        check(settings)


def test_no_callers_no_node() -> None:
    with pytest.raises(ConfigProblem, match="dicom.callers is empty"):
        check(make_settings(NO_REDIS))


@pytest.mark.parametrize(
    ("dicom", "message"),
    [
        # an AE mapped to a client that does not exist: refused before anything starts
        ({"callers": [{"ae_title": "PACS1", "client": "nobody"}]}, "mapped to client 'nobody'"),
        ({"callers": [{"ae_title": "PACS1", "client": "a"}, {"ae_title": "PACS1", "client": "a"}]}, "once"),
        ({"callers": [{"ae_title": "A" * 17, "client": "a"}]}, "1-16 printable"),
        ({"ae_title": "BAD\\AE"}, "1-16 printable"),
        ({"rules": [{"name": "r", "match": {"Modality": "re:(["}, "task_type": "pano"}]}, "expression"),
        ({"rules": [{"name": "r", "match": {}, "task_type": "pano"}]}, "at least 1"),
        ({"transfer_syntaxes": ["1.2.840.10008.1.2.x"]}, "not a UID"),
        ({"maximum_pdu_size": 100}, "greater than or equal to 4096"),
    ],
)
def test_dicom_section_refused(dicom: dict, message: str) -> None:
    client = client_entry("a", api_key("a"))
    with pytest.raises(ConfigError, match=message):
        make_settings(NO_REDIS, auth={"clients": [client]}, dicom=dicom)


def test_open_mode_maps_to_its_one_client() -> None:
    settings = make_settings(NO_REDIS, dicom={"callers": [{"ae_title": "DEV", "client": "dev"}]})
    assert settings.client(settings.dicom.callers[0].client).id == "dev"
