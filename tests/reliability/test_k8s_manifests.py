"""deploy/k8s: every document parses, workloads have probes and limits, images and names agree,
the ConfigMap's config.yaml passes the service's own validation and points the processes at the
Redis StatefulSet's sentinels, Redis, its sentinels and the processes that use it take the password
from the Secret, the Redis init script refuses the template's password, the NetworkPolicies admit
exactly the connections docs/deployment.md describes, and the KEDA overlay scales the GPU workers
on the bridge's queue-depth gauge. The Secret's values and every DENTALAI_* name:
test_deploy_settings.py."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from dentalai.config import Settings, load_config

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
IMAGES = {"dentalai/cpu", "dentalai/gpu"}
SECRET = "dentalai-secrets"
# secret.yaml lists the Secret's keys with refused values; it is created from generated values
# (docs/deployment.md), so kustomize never applies the template over the real one.
NOT_APPLIED = {"kustomization.yaml", "secret.yaml"}


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


def _pod(name: str) -> dict[str, Any]:
    return next(d for _, d in WORKLOADS if d["metadata"]["name"] == name)["spec"]["template"]


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return pod["spec"].get("initContainers", []) + pod["spec"]["containers"]


def test_every_document_has_kind_and_name() -> None:
    assert DOCS
    for fname, doc in DOCS:
        assert doc.get("apiVersion") and doc.get("kind"), fname
        if doc["kind"] != "Kustomization":
            assert doc["metadata"]["name"], fname


def test_kustomization_lists_every_file_but_the_secret_template() -> None:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - NOT_APPLIED
    assert set(kust["resources"]) == files
    assert "secret.yaml" not in kust["resources"]
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


def _dentalai_processes() -> dict[str, str]:
    """Workload name -> the dentalai process it runs."""
    return {
        d["metadata"]["name"]: c["args"][1]
        for _, d in WORKLOADS
        for c in d["spec"]["template"]["spec"]["containers"]
        if c.get("args", [""])[0] == "dentalai"
    }


def test_every_dentalai_process_is_deployed() -> None:
    assert set(_dentalai_processes().values()) == {"grpc", "api", "worker", "dispatcher"}
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
    # The image's entrypoint builds the plans where this spelling points (engines/docker_entrypoint.sh).
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


def _configmap_settings(tmp_path: Path) -> Settings:
    text = _named("ConfigMap", "dentalai-config")["data"]["config.yaml"]
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_config(str(path), environ={})


def test_configmap_passes_config_validation_and_holds_no_secret(tmp_path: Path) -> None:
    settings = _configmap_settings(tmp_path)
    grpc_service = _named("Service", "dentalai-grpc")
    host, port = settings.api.grpc_target.split(":")
    assert host == grpc_service["metadata"]["name"]
    assert int(port) == grpc_service["spec"]["ports"][0]["port"] == settings.grpc.port
    # Redis through its sentinels; the password comes from the Secret only (DENTALAI_REDIS__PASSWORD).
    assert settings.redis_url == "" and settings.redis.password == "" == settings.redis.sentinel_password
    assert not settings.auth.clients and not settings.auth.open
    assert settings.callbacks.signing_secrets == []


def _env_sources(container: dict[str, Any]) -> tuple[set[str], dict[str, tuple[str, str]]]:
    """(Secrets it takes whole, env name -> (Secret, key) of its secretKeyRefs)."""
    whole = {e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e}
    refs = {
        e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    return whole, refs


def test_secret_references_name_keys_of_the_template() -> None:
    keys = set(_named("Secret", SECRET)["stringData"])
    for _, doc in WORKLOADS:
        for c in _containers(doc["spec"]["template"]):
            whole, refs = _env_sources(c)
            assert whole <= {SECRET}, c["name"]
            for name, (secret, key) in refs.items():
                assert (secret, key) in {(SECRET, k) for k in keys}, f"{c['name']}: {name}"
    for workload in _dentalai_processes():
        for c in _pod(workload)["spec"]["containers"]:
            assert _env_sources(c)[0] == {SECRET}, f"{workload} does not get {SECRET}"


# The workloads that run a dentalai process using Redis (the REST bridge talks only gRPC).
REDIS_USERS = {"dentalai-grpc", "dentalai-worker-gpu", "dentalai-dispatcher"}


def _statefulset_redis() -> tuple[dict[str, Any], dict[str, Any], str]:
    """(the StatefulSet, its headless Service, init.sh)."""
    sts = _named("StatefulSet", "redis")
    init = _named("ConfigMap", "redis-scripts")["data"]["init.sh"]
    return sts, _named("Service", sts["spec"]["serviceName"]), init


def test_redis_its_sentinels_and_its_users_take_the_password_from_the_secret() -> None:
    password_ref = (SECRET, "REDIS_PASSWORD")
    redis_pod = _pod("redis")
    by_name = {c["name"]: _env_sources(c)[1] for c in _containers(redis_pod)}
    assert by_name["config"]["REDIS_PASSWORD"] == password_ref  # writes requirepass/masterauth
    for name in ("config", "redis", "sentinel"):  # redis-cli (init script, probes) logs in
        assert by_name[name]["REDISCLI_AUTH"] == password_ref, name
    # No password on a command line (visible in the pod spec and in ps).
    for c in _containers(redis_pod):
        assert "requirepass" not in " ".join(c.get("command", []) + c.get("args", [])), c["name"]
    # The processes that use Redis get the one Secret value for the nodes and the sentinels; no
    # other workload gets it under a DENTALAI_ name, and no proxy stands in front of Redis.
    for workload in _dentalai_processes():
        refs = _env_sources(_pod(workload)["spec"]["containers"][0])[1]
        wanted = {"DENTALAI_REDIS__PASSWORD": password_ref, "DENTALAI_REDIS__SENTINEL_PASSWORD": password_ref}
        if workload in REDIS_USERS:
            assert wanted.items() <= refs.items(), workload
        else:
            assert not any(name.startswith("DENTALAI_REDIS") for name in refs), workload
    assert not [f for f, d in DOCS if "haproxy" in str(d).lower() or "redis-master" in str(d)]


def test_processes_find_redis_through_the_statefulsets_sentinels(tmp_path: Path) -> None:
    settings = _configmap_settings(tmp_path)
    sts, headless, init = _statefulset_redis()
    sentinel_port = next(p["port"] for p in headless["spec"]["ports"] if p["name"] == "sentinel")
    name, service = sts["metadata"]["name"], headless["metadata"]["name"]
    pods = [f"{name}-{i}.{service}" for i in range(sts["spec"]["replicas"])]
    assert settings.redis.sentinels == [f"{pod}:{sentinel_port}" for pod in pods]
    assert f"sentinel monitor {settings.redis.master_name} " in init
    # Durable acceptance needs a replica to confirm, and there must be one to spare.
    assert 1 <= settings.redis.wait_replicas <= sts["spec"]["replicas"] - 1
    assert "min-replicas-to-write 1" in init and "min-replicas-max-lag 10" in init
    # The probes of the Redis users reach it through the same client as the processes.
    for workload in ("dentalai-worker-gpu", "dentalai-dispatcher"):
        probe = str(_pod(workload)["spec"]["containers"][0]["livenessProbe"])
        assert "sync_redis_client" in probe and "redis_url" not in probe, workload


# ---- the Redis init script (redis.yaml's redis-scripts), run with the POSIX sh ----------------------


def _run_init(tmp_path: Path, password: str, hostname: str = "redis-1", cli_answer: str = "") -> Any:
    """Runs init.sh with /conf in tmp_path and a stand-in redis-cli that prints cli_answer."""
    script = _named("ConfigMap", "redis-scripts")["data"]["init.sh"]
    conf = tmp_path / "conf"
    conf.mkdir(exist_ok=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    cli = bin_dir / "redis-cli"
    cli.write_text(f"#!/bin/sh\nprintf '%s' '{cli_answer}'\n[ -n '{cli_answer}' ]\n")
    cli.chmod(0o755)
    (tmp_path / "init.sh").write_text(script.replace("/conf/", f"{conf}/"))
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOSTNAME": hostname,
        "POD_NAMESPACE": "dentalai",
        "REDIS_PASSWORD": password,
        "REDISCLI_AUTH": password,
    }
    return subprocess.run(["sh", str(tmp_path / "init.sh")], env=env, capture_output=True, text=True)


@pytest.mark.parametrize(
    "password",
    [
        "",
        _named("Secret", SECRET)["stringData"]["REDIS_PASSWORD"],  # the template's placeholder
        "abc/def+ghi=" * 4,  # openssl rand -base64: breaks DENTALAI_REDIS_URL
        'quote"' * 8,
    ],
    ids=["empty", "template", "base64", "quote"],
)
def test_redis_init_refuses_a_template_or_unusable_password(tmp_path: Path, password: str) -> None:
    run = _run_init(tmp_path, password)
    assert run.returncode != 0
    assert "REDIS_PASSWORD" in run.stderr
    assert not (tmp_path / "conf" / "redis.conf").exists()


def test_redis_init_writes_the_password_into_both_configs(tmp_path: Path) -> None:
    password = secrets.token_hex(32)
    run = _run_init(tmp_path, password, hostname="redis-1")
    assert run.returncode == 0, run.stderr
    redis_conf = (tmp_path / "conf" / "redis.conf").read_text().splitlines()
    sentinel_conf = (tmp_path / "conf" / "sentinel.conf").read_text().splitlines()
    assert f'requirepass "{password}"' in redis_conf
    assert f'masterauth "{password}"' in redis_conf  # replicas log in to the master
    assert "min-replicas-to-write 1" in redis_conf  # a primary without replicas stops taking writes
    assert "replicaof redis-0.redis-headless.dentalai.svc.cluster.local 6379" in redis_conf
    assert f'requirepass "{password}"' in sentinel_conf
    monitor = next(i for i, line in enumerate(sentinel_conf) if line.startswith("sentinel monitor "))
    assert sentinel_conf.index(f"sentinel auth-pass dentalai {password}") > monitor  # must follow it
    for name in ("redis.conf", "sentinel.conf"):
        assert stat.S_IMODE((tmp_path / "conf" / name).stat().st_mode) == 0o600, name


def test_redis_init_takes_an_error_answer_for_no_master(tmp_path: Path) -> None:
    answer = "NOAUTH Authentication required."
    run = _run_init(tmp_path, secrets.token_hex(32), hostname="redis-0", cli_answer=answer)
    assert run.returncode == 0, run.stderr
    redis_conf = (tmp_path / "conf" / "redis.conf").read_text()
    assert "replicaof" not in redis_conf  # redis-0 is the first master, not a replica of "NOAUTH ..."
    assert "NOAUTH" not in (tmp_path / "conf" / "sentinel.conf").read_text()


# ---- NetworkPolicies ----------------------------------------------------------------------------

POLICIES = [d for _, d in DOCS if d["kind"] == "NetworkPolicy"]
HERE = {"kubernetes.io/metadata.name": "dentalai"}
GRPC_CLIENT = {"dentalai/grpc-client": "true"}
# A source of a connection: (its namespace's labels, its pod's labels); None = outside the cluster.
Source = tuple[dict[str, str], dict[str, str]] | None


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels", "matchExpressions"}, selector
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _peer_admits(peer: dict[str, Any], source: Source) -> bool:
    assert set(peer) <= {"podSelector", "namespaceSelector"}, f"the test does not model {peer}"
    if source is None:
        return False
    ns_labels, pod_labels = source
    if "namespaceSelector" in peer:
        ns_ok = _selects(peer["namespaceSelector"], ns_labels)
    else:  # a podSelector alone means the policy's own namespace
        ns_ok = ns_labels == HERE
    return ns_ok and _selects(peer.get("podSelector", {}), pod_labels)


def _admitted(target: dict[str, str], port: int, source: Source) -> bool:
    """Whether a connection from source to port of a pod labelled target passes the policies."""
    isolating = [p for p in POLICIES if "Ingress" in p["spec"]["policyTypes"]]
    selecting = [p for p in isolating if _selects(p["spec"]["podSelector"], target)]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress", []):
            ports = rule.get("ports")
            if ports and not any(p["port"] == port and p.get("protocol", "TCP") == "TCP" for p in ports):
                continue
            peers = rule.get("from")
            if not peers or any(_peer_admits(peer, source) for peer in peers):
                return True
    return False


def test_network_policies_are_well_formed_and_deny_ingress_by_default() -> None:
    assert POLICIES
    for policy in POLICIES:
        spec = policy["spec"]
        assert spec.get("policyTypes"), policy["metadata"]["name"]  # explicit, no defaulting
        for rule in spec.get("ingress", []):
            assert all(isinstance(p["port"], int) for p in rule.get("ports", [])), policy["metadata"]["name"]
    assert any(
        p["spec"]["podSelector"] == {}
        and p["spec"]["policyTypes"] == ["Ingress"]
        and not p["spec"].get("ingress")
        for p in POLICIES
    ), "no default-deny-ingress policy"


def test_network_policies_admit_exactly_the_intended_connections() -> None:
    pods = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for _, d in WORKLOADS}
    processes = set(_dentalai_processes())
    assert processes == {"dentalai-api", "dentalai-grpc", "dentalai-worker-gpu", "dentalai-dispatcher"}
    elsewhere = {"kubernetes.io/metadata.name": "clinic"}
    sources: dict[str, Source] = {name: (HERE, labels) for name, labels in pods.items()}
    sources |= {
        "unlabelled pod here": (HERE, {"app": "something"}),
        "grpc-client here": (HERE, GRPC_CLIENT),
        "grpc-client in a labelled namespace": (elsewhere | GRPC_CLIENT, GRPC_CLIENT),
        "grpc-client in an unlabelled namespace": (elsewhere, GRPC_CLIENT),
        "outside the cluster": None,
    }
    expected = {
        ("dentalai-api", 8000): set(sources),
        ("dentalai-grpc", 50051): {"dentalai-api", "grpc-client here", "grpc-client in a labelled namespace"},
        # Sentinel clients: a sentinel names the master, then they connect to that pod.
        ("redis", 6379): {"redis"} | REDIS_USERS,
        ("redis", 26379): {"redis"} | REDIS_USERS,
    }
    # Every port a pod listens on has a decision above; worker and dispatcher listen on none.
    declared = {(name, p["containerPort"]) for name in pods for c in _pod(name)["spec"]["containers"]
                for p in c.get("ports", [])}  # fmt: skip
    assert declared == set(expected)
    for name in ("dentalai-worker-gpu", "dentalai-dispatcher"):
        assert not any(c.get("ports") for c in _pod(name)["spec"]["containers"]), name
        for port in (8000, 8080, 50051, 6379, 9090):
            expected[(name, port)] = set()
    wrong = {}
    for (target, port), allowed in expected.items():
        got = {s for s, source in sources.items() if _admitted(pods[target], port, source)}
        if got != allowed:
            wrong[f"{target}:{port}"] = {"missing": allowed - got, "unexpected": got - allowed}
    assert not wrong, wrong


def test_workers_and_dispatchers_may_connect_out() -> None:
    """They download imageUrl images and post callbacks: no policy limits their egress."""
    for name in ("dentalai-worker-gpu", "dentalai-dispatcher"):
        labels = _pod(name)["metadata"]["labels"]
        for policy in POLICIES:
            spec = policy["spec"]
            if "Egress" in spec["policyTypes"] and _selects(spec["podSelector"], labels):
                assert {} in spec.get("egress", []), f"{policy['metadata']['name']} limits {name}'s egress"


# ---- KEDA: the GPU workers scale on the total queue depth ---------------------------------------

AUTOSCALING = K8S / "autoscaling"


def test_keda_overlay_scales_the_gpu_workers_on_the_bridges_queue_gauge() -> None:
    kust = yaml.safe_load((AUTOSCALING / "kustomization.yaml").read_text())
    assert ".." in kust["resources"]  # the whole base set, plus the scaler
    files = [AUTOSCALING / f for f in kust["resources"] if f != ".."]
    docs = [d for path in files for d in yaml.safe_load_all(path.read_text())]
    scaler = next(d for d in docs if d["kind"] == "ScaledObject")
    assert scaler["apiVersion"] == "keda.sh/v1alpha1"
    target = _named("Deployment", scaler["spec"]["scaleTargetRef"]["name"])
    assert target["metadata"]["name"] == "dentalai-worker-gpu"
    # At least one worker: the bridges' /readyz needs one, and a GPU worker is slow to start.
    assert 1 <= scaler["spec"]["minReplicaCount"] < scaler["spec"]["maxReplicaCount"]
    # The HPA owns the count: the overlay removes the Deployment's fixed replicas.
    patch = next(p for p in kust["patches"] if p["target"]["name"] == "dentalai-worker-gpu")
    assert yaml.safe_load(patch["patch"]) == [{"op": "remove", "path": "/spec/replicas"}]
    assert "replicas" in target["spec"]  # ... which the base has
    # One trigger on the total of every client's stream: the gauge the bridge exports.
    (trigger,) = scaler["spec"]["triggers"]
    assert trigger["type"] == "prometheus" and float(trigger["metadata"]["threshold"]) >= 1
    query = trigger["metadata"]["query"]
    assert query.startswith("max(") and "dentalai_queue_depth{" in query  # each bridge reports the total
    from dentalai.v1 import analysis_service_pb2 as pb
    from rest_bridge.metrics import Metrics

    exported = Metrics().render(pb.GetServiceStatusResponse(store_reachable=True, queue_depth=7)).decode()
    assert "\ndentalai_queue_depth 7.0\n" in exported
