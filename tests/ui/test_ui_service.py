"""Against the real service (gRPC server, a worker with the shipped models, REST bridge, Redis),
started by the shared `service` fixture of tests/conftest.py: the client, `dentalai analyze
--server` and the browser (through REST, as testers use it), each on a real film from
../shared/data (tests/real_films.py). Every task must SUCCEED with content that only working
models give; a failure code (12004 no model, 11003 input check, 12003 no usable result) fails.
"""

from __future__ import annotations

import json
import shutil
import time

import pytest
from google.protobuf import json_format
from PIL import Image
from ui_helpers import browser_skip_reason, drive, free_port, running_ui

from dentalai import analyze_cmd
from dentalai.client import AnalysisClient, result_of
from dentalai.v1 import task_pb2
from pipelines.pano.numbering import PERMANENT_FDI, PRIMARY_FDI
from tests import real_films
from ui.app import UIConfig

pytestmark = pytest.mark.slow
CALLBACK = "https://callback.invalid/ui-tests"
FILMS = {"ceph": real_films.CEPH_FILM, "pano": real_films.PANO_FILM}


@pytest.fixture(scope="module")
def endpoints(request):
    """(rest_url, grpc_target, token) of the running service, once its worker runs both models."""
    real_films.require(*FILMS.values())  # before the service is started for nothing
    service = request.getfixturevalue("service")
    with AnalysisClient(service.grpc_target, token=service.token, timeout=5) as client:
        deadline = time.monotonic() + 60
        while True:
            status = client.service_status()
            types = {t for w in status.workers for t in w.task_types}
            if {"ceph", "pano"} <= types:
                break
            assert time.monotonic() < deadline, f"no worker with the shipped ceph and pano models: {status}"
            time.sleep(0.2)
    return service.rest_url, service.grpc_target, service.token


def check_ceph(data: dict, width: int, height: int) -> None:
    """A ceph result on the real film: every landmark near the annotation, the analysis complete."""
    errors = real_films.ceph_errors_mm(data["landmarks"])
    assert max(errors.values()) < 4.0, errors
    assert (data["image"]["width"], data["image"]["height"]) == (width, height)
    assert len(data["measurements"]) >= 17 and len(data["classifications"]) == 8
    assert data["summary"]["skeletalClass"]


def check_pano(data: dict) -> None:
    """A pano result on the real film: the annotated teeth, numbered, and about no others."""
    truth = real_films.pano_truth()
    found = [t["fdi"] for t in data["teeth"]]
    assert len(found) == len(set(found)) and set(found) <= set(PERMANENT_FDI) | set(PRIMARY_FDI)
    assert abs(len(found) - len(truth)) <= 2, (sorted(found), sorted(truth))
    assert len(set(found) & truth) >= len(truth) - 2, (sorted(found), sorted(truth))
    assert data["summary"]["toothCount"] == len(found)
    width, height = real_films.PANO_SIZE
    for tooth in data["teeth"]:
        xs, ys = zip(*tooth["polygon"], strict=True)
        assert 0 <= min(xs) and max(xs) < width and 0 <= min(ys) and max(ys) < height, tooth["fdi"]


@pytest.mark.parametrize("task_type", ["ceph", "pano"])
def test_client_analyze(endpoints, task_type):
    _, target, token = endpoints
    image = FILMS[task_type].read_bytes()
    spacing = {"pixel_spacing_mm": 0.3} if task_type == "ceph" else {}
    with AnalysisClient(target, token=token, timeout=120) as client:
        task = client.analyze(task_type, image_data=image, callback_url=CALLBACK, timeout=120, **spacing)
        watched = list(client.watch(task.task_id, timeout=10))
    assert task.status == task_pb2.SUCCEEDED, task.error
    assert watched and watched[-1].status == task_pb2.SUCCEEDED
    data = json_format.MessageToDict(result_of(task))
    if task_type == "ceph":
        check_ceph(data, 640, 800)
        assert data["image"]["pixelSpacingMm"] == pytest.approx(0.3)
    else:
        check_pano(data)


def test_cli_server_mode(endpoints, tmp_path, capsys):
    _, target, token = endpoints
    image = tmp_path / "pano72.jpg"
    shutil.copy(real_films.PANO_FILM, image)
    argv = [str(image), "--type", "pano", "--out", str(tmp_path / "out"), "--server", target, "--no-progress"]
    code = analyze_cmd.main(argv + ["--token", token, "--callback-url", CALLBACK])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "1 succeeded, 0 failed" in printed
    check_pano(json.loads((tmp_path / "out" / "pano72.json").read_text()))
    assert Image.open(tmp_path / "out" / "pano72.png").size == real_films.PANO_SIZE


@pytest.mark.skipif(browser_skip_reason() is not None, reason=browser_skip_reason() or "")
def test_browser_against_service(endpoints, tmp_path):
    rest, target, token = endpoints
    image = tmp_path / "isbi_166.png"
    shutil.copy(real_films.CEPH_FILM, image)
    cfg = UIConfig(backend="rest", api_url=rest, grpc_target=target, token=token, port=free_port(),
                   callback_url=CALLBACK, poll_interval_s=0.3)  # fmt: skip
    with running_ui(cfg) as url:
        shown = drive(url, image, "ceph", tmp_path / "service.png", timeout_s=60)
    assert (tmp_path / "service.png").exists()
    assert "SUCCEEDED" in shown["status"], shown["status"]
    assert shown["overlay_visible"] and shown["downloads"] >= 2
    assert "SNA" in shown["measurements"] and "interpretation" in shown["measurements"]
    assert "ANB" in shown["classes"]
