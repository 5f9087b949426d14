"""Task types have one source, pipelines.registry: everything else reads it or is checked by it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dentalai.errors import DentalAIError, ErrorCode
from dentalai.v1 import task_pb2
from engines.sample_model import write_sample_model
from grpc_server.validation import validate_submission
from pipelines.registry import PIPELINES, TASK_TYPES, load_pipelines
from tests.backbone.helpers import submit_request
from tests.conftest import make_settings

REPO = Path(__file__).resolve().parents[2]


def test_every_task_type_has_a_task_result_field() -> None:
    # The store writes a result into the Task field named after its task type.
    fields = {f.name for f in task_pb2.Task.DESCRIPTOR.oneofs_by_name["result"].fields}
    assert set(TASK_TYPES) == set(PIPELINES) <= fields


def test_shipped_manifests_name_their_task_type() -> None:
    for task_type, target in PIPELINES.items():
        module, _, cls = target.partition(":")
        model_name = getattr(__import__(module, fromlist=[cls]), cls).model_name
        manifest = json.loads((REPO / "models" / model_name / "manifest.json").read_text())
        assert manifest["task_type"] == task_type


def test_submission_accepts_exactly_the_registry_types() -> None:
    settings = make_settings("redis://127.0.0.1:1/0")
    for task_type in TASK_TYPES:
        validate_submission(submit_request("https://hooks.example.com/cb", task_type=task_type), settings)
    with pytest.raises(DentalAIError) as err:
        validate_submission(submit_request("https://hooks.example.com/cb", task_type="xray"), settings)
    assert err.value.code == ErrorCode.UNSUPPORTED_TASK_TYPE
    assert all(t in err.value.message for t in TASK_TYPES)


def test_a_model_for_another_task_type_is_unavailable(tmp_path: Path) -> None:
    write_sample_model(tmp_path / "pano-teeth")  # a manifest whose task_type is "sample"
    settings = make_settings("redis://127.0.0.1:1/0", worker={"models_dir": str(tmp_path)})
    loaded = load_pipelines(settings, ["pano"])
    assert not loaded.pipelines and "'sample'" in loaded.unavailable["pano"]
