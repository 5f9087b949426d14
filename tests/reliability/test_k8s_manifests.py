"""deploy/k8s: every document parses, workloads have probes and limits, images and names agree,
and the ConfigMap's config.yaml and the Secret's variables pass the service's own validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from dentalai.config import load_config

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
IMAGES = {"dentalai/cpu", "dentalai/gpu"}


def _docs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((path.name, doc))
    return out


DOCS = _docs()
WORKLOADS = [(f, d) for f, d in DOCS if d["kind"] in ("Deployment", "StatefulSet")]


def _named(kind: str, name: str) -> dict[str, Any]:
    return next(d for _, d in DOCS if d["kind"] == kind and d["metadata"]["name"] == name)


def test_every_document_has_kind_and_name() -> None:
    assert DOCS
    for fname, doc in DOCS:
        assert doc.get("apiVersion") and doc.get("kind"), fname
        if doc["kind"] != "Kustomization":
            assert doc["metadata"]["name"], fname


def test_kustomization_lists_every_file() -> None:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kust["resources"]) == files
    assert {i["name"] for i in kust["images"]} == IMAGES


@pytest.mark.parametrize("fname,doc", WORKLOADS, ids=[d["metadata"]["name"] for _, d in WORKLOADS])
def test_workload_has_probes_and_limits(fname: str, doc: dict[str, Any]) -> None:
    pod = doc["spec"]["template"]["spec"]
    labels = doc["spec"]["template"]["metadata"]["labels"]
    assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for c in pod.get("initContainers", []) + pod["containers"]:
        assert c["resources"]["limits"]["cpu"] and c["resources"]["limits"]["memory"], c["name"]
    for c in pod["containers"]:
        assert "livenessProbe" in c, f"{fname}:{c['name']} has no liveness probe"
        if c.get("ports"):  # serves traffic: must say when it is ready
            assert "readinessProbe" in c, f"{fname}:{c['name']} has no readiness probe"
        image = c["image"].split(":")[0]
        if image.startswith("dentalai"):
            assert image in IMAGES, c["image"]
            assert c["args"][0] == "dentalai"


def test_service_probes_use_the_contract_routes() -> None:
    api = _named("Deployment", "dentalai-api")["spec"]["template"]["spec"]["containers"][0]
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    grpc = _named("Deployment", "dentalai-grpc")["spec"]["template"]["spec"]["containers"][0]
    assert grpc["livenessProbe"]["grpc"]["port"] == grpc["ports"][0]["containerPort"]


def test_every_dentalai_process_is_deployed() -> None:
    args = {
        c["args"][1]
        for _, d in WORKLOADS
        for c in d["spec"]["template"]["spec"]["containers"]
        if c.get("args", [""])[0] == "dentalai"
    }
    assert args == {"grpc", "api", "worker", "dispatcher"}
    assert _named("Deployment", "dentalai-dispatcher")["spec"]["replicas"] >= 2


def test_gpu_worker_has_gpu_writable_models_and_long_grace(tmp_path: Path) -> None:
    settings = _configmap_settings(tmp_path)
    dep = _named("Deployment", "dentalai-worker-gpu")
    pod = dep["spec"]["template"]["spec"]
    worker = pod["containers"][0]
    assert worker["image"] == "dentalai/gpu"
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["terminationGracePeriodSeconds"] > settings.tasks.task_timeout_s
    assert settings.tasks.visibility_timeout_s > settings.tasks.task_timeout_s
    mounts = {m["name"]: m for m in worker["volumeMounts"]}
    assert not mounts["models"].get("readOnly")
    assert {"name": "DENTALAI_WORKER_MODELS_DIR", "value": mounts["models"]["mountPath"]} in worker["env"]
    disp = _named("Deployment", "dentalai-dispatcher")["spec"]["template"]["spec"]
    assert disp["terminationGracePeriodSeconds"] > settings.callbacks.timeout_s


def test_every_workload_has_a_pdb() -> None:
    pdbs = [d["spec"]["selector"]["matchLabels"] for _, d in DOCS if d["kind"] == "PodDisruptionBudget"]
    for _, doc in WORKLOADS:
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert any(sel.items() <= labels.items() for sel in pdbs), doc["metadata"]["name"]


def test_services_select_existing_pods() -> None:
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for _, d in WORKLOADS]
    for _, doc in DOCS:
        if doc["kind"] == "Service":
            sel = doc["spec"]["selector"]
            assert any(sel.items() <= lab.items() for lab in pod_labels), doc["metadata"]["name"]


def _configmap_settings(tmp_path: Path) -> Any:
    text = _named("ConfigMap", "dentalai-config")["data"]["config.yaml"]
    path = tmp_path / "config.yaml"
    path.write_text(text)
    secret = _named("Secret", "dentalai-secrets")["stringData"]
    return load_config(str(path), environ=dict(secret))


def test_configmap_and_secret_pass_config_validation(tmp_path: Path) -> None:
    settings = _configmap_settings(tmp_path)
    assert settings.redis_url.startswith("redis://redis-master:")
    assert settings.api.grpc_target.split(":")[0] == _named("Service", "dentalai-grpc")["metadata"]["name"]
    assert len(settings.auth.tokens) == 2 and settings.callbacks.signing_secrets
