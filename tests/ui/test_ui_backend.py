"""The UI's REST backend and views: request body, envelope and error parsing, tables."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import httpx
import pytest

from dentalai.config import load_config
from dentalai.errors import DentalAIError, ErrorCode
from ui import views
from ui.app import UIConfig, config_from_settings
from ui.backend import RestBackend, ServiceUnreachable

sys.path.insert(0, str(Path(__file__).parents[1] / "tools"))
from sample_results import ceph_result, pano_result  # noqa: E402


def _backend(handler):
    return RestBackend(
        "http://api", "http://localhost:7860/ui-callback", token="tok", transport=httpx.MockTransport(handler)
    )


def test_submit_sends_contract_body_and_reads_envelope():
    seen = {}

    def handler(request):
        seen["body"] = json.loads(request.content)
        seen["auth"] = request.headers["authorization"]
        return httpx.Response(
            202, json={"code": 0, "message": "accepted", "data": {"taskId": "a", "status": "QUEUED"}}
        )

    task = _backend(handler).submit("pano", b"\x89PNG", {"toothNumbering": "UNIVERSAL"})
    assert task == {"taskId": "a", "status": "QUEUED"}
    body = seen["body"]
    assert body["taskType"] == "pano" and base64.b64decode(body["imageBase64"]) == b"\x89PNG"
    assert body["callbackUrl"] == "http://localhost:7860/ui-callback"
    assert body["options"] == {"toothNumbering": "UNIVERSAL"}
    assert seen["auth"] == "Bearer tok"


def test_errors_keep_code_message_and_details():
    def handler(request):
        detail = {"field": "options.pixelSpacingMm", "reason": "must be > 0"}
        return httpx.Response(400, json={"code": 10001, "message": "invalid parameter", "details": [detail]})

    with pytest.raises(DentalAIError) as err:
        _backend(handler).submit("ceph", b"x", {"pixelSpacingMm": -1})
    assert err.value.code == ErrorCode.INVALID_PARAMETER
    assert err.value.details == [("options.pixelSpacingMm", "must be > 0")]
    with pytest.raises(DentalAIError) as err:
        _backend(lambda r: httpx.Response(404, json={"code": 10009, "message": "unknown task"})).get("zz")
    assert err.value.code == ErrorCode.TASK_NOT_FOUND
    with pytest.raises(DentalAIError) as err:
        _backend(lambda r: httpx.Response(502, text="<html>bad gateway")).get("zz")
    assert err.value.code == ErrorCode.INTERNAL and "502" in err.value.message


def test_unreachable_is_not_a_contract_error():
    def handler(request):
        raise httpx.ConnectError("refused")

    with pytest.raises(ServiceUnreachable):
        _backend(handler).get("a")


def test_views_for_ceph_pano_and_failure():
    cols, rows = views.measurement_rows(ceph_result())
    assert cols[4] == "norm" and rows[0] == ["SNA", "SNA angle", 82.0, "deg", "82.0 ± 3.5", "normal"]
    _, classes = views.class_rows(ceph_result())
    assert classes[0][-1] == "Class II" and classes[-1][-1] == "normodivergent"
    cols, teeth = views.measurement_rows(pano_result())
    assert cols[0] == "number" and [t[0] for t in teeth] == ["11", "21", "31", "41"]
    _, summary = views.class_rows(pano_result())
    assert ["missing teeth", "18, 28"] in summary
    assert ["findings", "none"] in summary
    with_findings = pano_result()
    with_findings["teeth"][0]["findings"] = ["caries"]
    with_findings["findings"] = [{"type": "caries", "fdi": 11, "number": 11}, {"type": "caries", "fdi": 0}]
    cols, teeth = views.measurement_rows(with_findings)
    assert cols[-1] == "findings" and teeth[0][-1] == "caries" and teeth[1][-1] == ""
    assert ["findings: caries", "2 on 11, no tooth"] in views.class_rows(with_findings)[1]
    failed = {
        "taskId": "t",
        "status": "FAILED",
        "error": {"code": 12004, "message": "model for ceph is not available"},
    }
    assert views.task_result(failed) is None
    assert "**Error 12004**: model for ceph is not available" in views.status_markdown(failed, "REST")


def test_config_from_settings_and_env(monkeypatch):
    env = {"DENTALAI_API__HOST": "0.0.0.0", "DENTALAI_API__PORT": "8100", "DENTALAI_GRPC__HOST": "10.0.0.2",
           "DENTALAI_GRPC__PORT": "50100"}  # fmt: skip
    monkeypatch.setenv("DENTALAI_TOKEN", "the-ui-clients-key")
    cfg = config_from_settings(load_config(environ=env))
    assert (cfg.api_url, cfg.grpc_target) == ("http://127.0.0.1:8100", "10.0.0.2:50100")
    assert cfg.token == "the-ui-clients-key"
    monkeypatch.delenv("DENTALAI_TOKEN")
    assert config_from_settings(load_config(environ=env)).token is None
    assert cfg.effective_callback_url == "http://localhost:7860/ui-callback"
    # The UI's variables are config keys like any other (the single-underscore spelling too).
    env |= {"DENTALAI_UI_CALLBACK_URL": "https://cb.example/x", "DENTALAI_UI_API_URL": "http://api:8000",
            "DENTALAI_UI__BACKEND": "grpc"}  # fmt: skip
    cfg = config_from_settings(load_config(environ=env))
    assert (cfg.effective_callback_url, cfg.api_url) == ("https://cb.example/x", "http://api:8000")
    assert cfg.backend == "grpc"
    assert UIConfig(port=9).effective_callback_url == "http://localhost:9/ui-callback"


def test_primary_teeth_are_named_by_their_letter_in_universal_numbering():
    data = {
        "numbering": "UNIVERSAL",
        "teeth": [
            {"fdi": 55, "number": 0, "universalLabel": "A"},
            {"fdi": 16, "number": 3, "universalLabel": "3"},
        ],
        "findings": [{"type": "caries", "fdi": 55, "number": 0}, {"type": "caries", "fdi": 0, "number": 0}],
    }
    _, rows = views.measurement_rows(data)
    assert [r[0] for r in rows] == ["A", "3"]
    assert views.finding_rows(data) == [["findings: caries", "2 on A, no tooth"]]


def test_finding_rows_say_none_found_and_not_assessed():
    data = {
        "numbering": "FDI",
        "teeth": [{"fdi": 36, "number": 36}],
        "findings": [{"type": "caries", "fdi": 36, "number": 36}],
        "findingsAssessed": ["caries", "periapical"],
        "findingsNotAssessed": [],
    }
    assert views.finding_rows(data) == [
        ["findings: caries", "1 on 36"], ["findings: periapical", "none found"]]
    small = {"teeth": [], "findings": [], "findingsAssessed": [],
             "findingsNotAssessed": [{"type": "caries", "reason": "film 512 px wide: ..."}]}
    assert views.finding_rows(small) == [["findings: caries", "not assessed: film 512 px wide: ..."]]
