"""Hypothesis over SubmitAnalysis validation and the bearer-token check: whatever arrives, the
answer is either acceptance or one contract error (10001 with one known field, or 10002)."""

from __future__ import annotations

import ipaddress
from typing import Any

from google.protobuf import struct_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from dentalai.errors import DentalAIError
from dentalai.v1 import analysis_service_pb2 as pb
from dentalai.v1 import results_pb2
from grpc_server.clients import Clients
from grpc_server.validation import TASK_ID, validate_submission
from tests.conftest import api_key, client_entry, make_settings

SETTINGS = make_settings("redis://127.0.0.1:1/0", ssrf={"allow_cidrs": []})
FIELDS = {
    "taskType",
    "imageUrl",
    "imageBase64",
    "callbackUrl",
    "taskId",
    "metadata",
    "options.pixelSpacingMm",
    "options.toothNumbering",
}
GOOD_URL = "https://hooks.example.com/cb"

text = st.text(max_size=80)
urls = st.one_of(
    text,
    st.just(GOOD_URL),
    st.builds(
        lambda s, h, p: f"{s}://{h}/{p}",
        st.sampled_from(["http", "https", "ftp", "file", "gopher"]),
        st.one_of(st.just("example.com"), st.ip_addresses().map(str), text),
        text,
    ),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)


@st.composite
def requests(draw: st.DrawFn) -> pb.SubmitAnalysisRequest:
    fields: dict[str, Any] = {"task_type": draw(st.sampled_from(["pano", "ceph", ""]) | text)}
    image = draw(st.sampled_from(["data", "url", "none"]))
    if image == "data":
        fields["image_data"] = draw(st.binary(max_size=64))
    elif image == "url":
        fields["image_url"] = draw(urls)
    fields["callback_url"] = draw(urls)
    fields["task_id"] = draw(st.from_regex(TASK_ID, fullmatch=True) | text)
    request = pb.SubmitAnalysisRequest(**fields)
    if draw(st.booleans()):
        request.metadata.update(draw(st.dictionaries(text, json_values, max_size=6)))
    if draw(st.booleans()):
        spacing = draw(st.none() | st.floats())
        if spacing is not None:
            request.options.pixel_spacing_mm = spacing
        request.options.tooth_numbering = draw(st.integers(-3, 5))
    return request


@settings(max_examples=300, deadline=None)
@given(requests())
def test_any_request_is_accepted_or_gets_one_contract_error(request: pb.SubmitAnalysisRequest) -> None:
    try:
        validate_submission(request, SETTINGS)
    except DentalAIError as err:
        assert err.code in (10001, 10002)
        assert len(err.details) == 1 and err.details[0][0] in FIELDS
    else:
        assert request.task_type in ("pano", "ceph") and request.WhichOneof("image")
        assert request.callback_url.startswith(("http://", "https://"))


@settings(max_examples=100, deadline=None)
@given(
    task_type=st.sampled_from(["pano", "ceph"]),
    data=st.binary(min_size=1, max_size=64),
    task_id=st.from_regex(TASK_ID, fullmatch=True),
    spacing=st.floats(min_value=1e-6, max_value=10),
    numbering=st.sampled_from(list(results_pb2.ToothNumbering.values())),
)
def test_every_valid_request_is_accepted(
    task_type: str, data: bytes, task_id: str, spacing: float, numbering: int
) -> None:
    request = pb.SubmitAnalysisRequest(
        task_type=task_type, image_data=data, callback_url=GOOD_URL, task_id=task_id
    )
    request.options.pixel_spacing_mm = spacing
    request.options.tooth_numbering = numbering
    validate_submission(request, SETTINGS)


INTERNAL_NETS = [
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "0.0.0.0/8",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
]


@settings(max_examples=150, deadline=None)
@given(
    net=st.sampled_from(INTERNAL_NETS), offset=st.integers(min_value=0), field=st.sampled_from(["cb", "img"])
)
def test_every_address_of_internal_networks_is_refused(net: str, offset: int, field: str) -> None:
    network = ipaddress.ip_network(net)
    address = network[offset % network.num_addresses]
    host = f"[{address}]" if address.version == 6 else str(address)
    url = f"http://{host}:8080/x"
    request = pb.SubmitAnalysisRequest(task_type="pano", callback_url=GOOD_URL if field == "img" else url)
    if field == "img":
        request.image_url = url
    else:
        request.image_data = b"x"
    try:
        validate_submission(request, SETTINGS)
    except DentalAIError as err:
        assert err.code == 10001 and err.details[0][0] == ("imageUrl" if field == "img" else "callbackUrl")
    else:
        raise AssertionError(f"{url} accepted")


def test_metadata_exactly_at_and_over_the_limit() -> None:
    limit = SETTINGS.limits.max_metadata_bytes
    meta = struct_pb2.Struct()
    meta.update({"k": "x" * (limit - len('{"k":""}'))})
    ok = pb.SubmitAnalysisRequest(task_type="pano", image_data=b"x", callback_url=GOOD_URL, metadata=meta)
    validate_submission(ok, SETTINGS)
    meta.update({"k": "x" * (limit - len('{"k":""}') + 1)})
    ok.metadata.CopyFrom(meta)
    try:
        validate_submission(ok, SETTINGS)
    except DentalAIError as err:
        assert err.code == 10001 and err.details[0][0] == "metadata"
    else:
        raise AssertionError("metadata over the limit accepted")


KEYS = [api_key("clinic-current"), api_key("clinic-previous"), api_key("lab")]
CLIENTS = Clients(
    make_settings("redis://127.0.0.1:1/0", auth={"clients": [
        client_entry("clinic", KEYS[0], KEYS[1]), client_entry("lab", KEYS[2])
    ]}).auth
)
OWNER = {KEYS[0]: "clinic", KEYS[1]: "clinic", KEYS[2]: "lab"}


@settings(max_examples=300, deadline=None)
@given(
    key=st.sampled_from(["authorization", "Authorization", "x-authorization", "auth"]),
    value=st.one_of(
        text,
        st.builds(
            lambda s, t: f"{s} {t}",
            st.sampled_from(["Bearer", "bearer", "Basic", "Token", ""]),
            st.sampled_from(KEYS)
            | text
            | st.sampled_from([t[:-1] for t in KEYS] + [t + "x" for t in KEYS]),
        ),
    ),
)
def test_only_an_exact_configured_key_names_its_client(key: str, value: str) -> None:
    scheme, _, token = value.partition(" ")
    valid = key.lower() == "authorization" and scheme.lower() == "bearer" and token.strip() in OWNER
    client = CLIENTS.resolve(((key, value),))
    assert (client.id if client else None) == (OWNER[token.strip()] if valid else None)


def test_rotated_keys_name_their_own_client_and_nothing_else() -> None:
    for key, owner in OWNER.items():
        client = CLIENTS.resolve((("authorization", f"Bearer {key}"),))
        assert client is not None and client.id == owner
    assert CLIENTS.resolve((("authorization", "Bearer "),)) is None
    assert CLIENTS.resolve((("authorization", f"Bearer {KEYS[0]},{KEYS[1]}"),)) is None
    assert CLIENTS.resolve(None) is None


def _only_client_with(key: str) -> Clients:
    return Clients(make_settings("redis://127.0.0.1:1/0", auth={"clients": [client_entry("c", key)]}).auth)


def test_a_short_key_is_refused_even_when_its_digest_is_configured() -> None:
    short = "short-key"
    assert _only_client_with(short).resolve((("authorization", f"Bearer {short}"),)) is None
    long_key = short * 4
    assert _only_client_with(long_key).resolve((("authorization", f"Bearer {long_key}"),)) is not None
