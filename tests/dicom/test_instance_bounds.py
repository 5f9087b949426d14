"""A received instance is read only up to its Pixel Data, with the decoder's bounds
(grpc_server/decode.py dicom_header): hostile data sets are answered at once and in little memory."""

from __future__ import annotations

import time

import numpy as np
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from dicom_node import status
from dicom_node.instance import Refused, read_instance
from grpc_server.decode import dicom_header
from tests.dicom import films
from tests.security import hostile_corpus

LIMIT = 20 * 2**20


def test_an_item_flood_is_refused_after_its_read_budget() -> None:
    data = hostile_corpus.dicom_item_flood()  # 2 million empty items: 26 s and 1.4 GB read whole
    started = time.monotonic()
    with pytest.raises(Refused) as refused:
        read_instance(data, "1.2.840.10008.5.1.4.1.1.7", "1.2.3", LIMIT)
    assert refused.value.status == status.CANNOT_UNDERSTAND and "100000" in refused.value.comment
    assert time.monotonic() - started < 10


def test_deflate_bombs_are_inflated_only_up_to_the_header_budget() -> None:
    started = time.monotonic()
    _, has_pixels = dicom_header(hostile_corpus.dicom_deflate_bomb())  # 2.4 GB of pixels deflated
    assert has_pixels  # routed and stored; the worker's bounded decoding refuses it (11002)
    _, has_pixels = dicom_header(hostile_corpus.dicom_deflate_header_bomb())  # header never ends
    assert not has_pixels
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian])
def test_a_good_instance_is_read_to_its_pixels(syntax: str) -> None:
    ds = films.instance(np.zeros((300, 320), np.uint8), Modality="PX", BodyPartExamined="JAW")
    instance = read_instance(films.encode(ds, syntax), ds.SOPClassUID, ds.SOPInstanceUID, LIMIT)
    assert instance.sop_instance_uid == ds.SOPInstanceUID
    assert (instance.tags.Modality, instance.tags.BodyPartExamined) == ("PX", "JAW")
    assert "PixelData" not in instance.tags  # never read here


def test_too_large_before_anything_is_read() -> None:
    with pytest.raises(Refused) as refused:
        read_instance(b"\0" * 2048, "1.2", "1.2", 1024)
    assert refused.value.status == status.TOO_LARGE
