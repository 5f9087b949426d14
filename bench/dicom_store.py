"""C-STORE answer time of the DICOM node for a 5 MB instance, against C-ECHO on the same association
and a bare pynetdicom Storage SCP that stores nothing, all in the same run.

    .venv/bin/python bench/dicom_store.py                  # 50 instances of 5 MB, about 20 s
    .venv/bin/python bench/dicom_store.py --reps 200 --mb 10 --worker sample

Starts its own redis-server and `dentalai dicom` (a client `pacs` for the sender's AE) and, as the
second baseline, a bare SCP process (this file with --bare-scp: answers success without reading
the data set). The sender (pynetdicom, in this process) sends each instance from a file, as a
PACS sends from its storage, each with a new SOP Instance UID: every C-STORE makes a new task.
Measured from the sender's side, per C-STORE: the request, the 5 MB data set, the node's checks,
routing and TaskStore.create (the instance written to Redis and queued), and the answer.

- `C-ECHO`: the association's round trip, the floor of any answer;
- `bare SCP`: the same transfer to an SCP that does nothing with it: what pynetdicom and loopback
  cost without the node's work;
- `node`: the DICOM node. Its answer never waits for an analysis: `--worker sample|real` runs a
  worker that analyses the queued instances meanwhile (the sample worker answers at once, the real
  one runs the models on the 2 cores the sender and the node share).

The three are taken in turn (an echo, a store to the bare SCP, a store to the node, per instance)
so that each sees the same load. Prints p50/p90/p99/max per target, the ratios to both baselines,
and the load average before and after (other work on the machine shows there). Aim (issue 32):
the node's answer under 50 ms for a 5 MB instance.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402
from pynetdicom import AE, _config, evt  # noqa: E402
from pynetdicom.sop_class import Verification  # noqa: E402

from bench.soak import percentile  # noqa: E402
from tests.conftest import Processes, api_key, client_entry, free_port, make_settings, start_redis  # noqa: E402
from tests.dicom import films  # noqa: E402

DX = films.DX_PRESENTATION


def bare_scp(port: int) -> None:
    """A Storage SCP that answers success at once (the baseline's server)."""
    ae = AE(ae_title="BARE")
    ae.maximum_pdu_size = 262144
    ae.add_supported_context(DX, [films.EXPLICIT])
    ae.add_supported_context(Verification)
    stop = False

    def done(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, done)
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, lambda e: 0)])
    print("bare scp ready", flush=True)
    while not stop:
        time.sleep(0.2)
    server.shutdown()


def instance_files(directory: Path, count: int, megabytes: float) -> list[Path]:
    """`count` DICOM files of about `megabytes` each (8-bit pixels, 2:1 as a panoramic film, so
    that a real worker runs its models on them), each its own SOP Instance."""
    rows = int((megabytes * 1e6 / 2) ** 0.5)
    pixels = np.random.default_rng(0).integers(0, 255, (rows, 2 * rows), dtype=np.uint8)
    template = films.instance(pixels, Modality="PX")
    paths = []
    for i in range(count):
        template.SOPInstanceUID = generate_uid()
        path = directory / f"{i}.dcm"
        path.write_bytes(films.encode(template))
        paths.append(path)
    return paths


def associate(port: int, called_ae: str) -> Any:
    ae = AE(ae_title="SENDER")
    ae.add_requested_context(DX, [films.EXPLICIT])
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title=called_ae)
    assert assoc.is_established, f"no association with {called_ae}"
    return assoc


def timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    answer = call()
    elapsed = (time.perf_counter() - start) * 1000
    assert answer.get("Status") == 0, answer
    return elapsed


def measure(bare_port: int, node_port: int, paths: list[Path]) -> dict[str, list[float]]:
    """C-STORE ms to the bare SCP and to the node, and C-ECHO ms to the node, one association each,
    taken in turn per instance so that all three see the same load."""
    bare, node = associate(bare_port, "BARE"), associate(node_port, "DENTALAI")
    times: dict[str, list[float]] = {"C-ECHO": [], "bare SCP": [], "node": []}
    try:
        for bare_path, node_path in zip(paths[::2], paths[1::2], strict=False):
            times["C-ECHO"].append(timed(node.send_c_echo))
            times["bare SCP"].append(timed(lambda p=bare_path: bare.send_c_store(p)))
            times["node"].append(timed(lambda p=node_path: node.send_c_store(p)))
    finally:
        bare.release()
        node.release()
    return times


def row(name: str, values: list[float]) -> str:
    cells = "  ".join(f"p{q} {percentile(values, q):7.2f} ms" for q in (50, 90, 99))
    return f"{name:<14} n {len(values):4d}  {cells}  max {max(values):7.2f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=50, help="instances sent to each target")
    parser.add_argument("--mb", type=float, default=5.0, help="size of each instance, MB")
    parser.add_argument("--worker", choices=["none", "sample", "real"], default="none")
    parser.add_argument("--bare-scp", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare_scp:
        bare_scp(args.bare_scp)
        return 0
    _config.STORE_SEND_CHUNKED_DATASET = True  # sent from the file, as a PACS sends from storage
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="dicom-store-bench-") as tmp:
        work = Path(tmp)
        redis = start_redis(work / "redis")
        procs = Processes(log_dir=work)
        try:
            clients = [client_entry("pacs", api_key("pacs"), deidentify=False)]
            callers = [{"ae_title": "SENDER", "client": "pacs"}]
            dicom = {"enabled": True, "port": free_port(), "callers": callers}
            settings = make_settings(
                redis.url, auth={"clients": clients}, dicom=dicom, limits={"queue_max_length": 100000},
                worker={"models_dir": str(REPO / "models")},
            )  # fmt: skip
            procs.start(["dicom"], settings, wait_line="dicom node ready")
            bare_port = free_port()
            bare_args = ["--bare-scp", str(bare_port)]
            procs.start(bare_args, settings, module="bench.dicom_store", wait_line="bare scp ready")
            if args.worker == "sample":
                sample = "tests.reports.sample_worker"
                procs.start([], settings, module=sample, wait_line="worker ready", timeout=60)
            elif args.worker == "real":
                procs.start(["worker"], settings, wait_line="worker ready", timeout=180)
            paths = instance_files(work, args.reps * 2 + 10, args.mb)
            size = paths[0].stat().st_size
            measure(bare_port, settings.dicom.port, paths[:10])  # warm-up of the servers and the sender
            times = measure(bare_port, settings.dicom.port, paths[10:])
        finally:
            procs.stop_all()
            redis.stop()
    load_after = os.getloadavg()
    print(f"instance {size / 1e6:.2f} MB (Explicit VR LE), {args.reps} per target, worker: {args.worker}")
    for name, values in times.items():
        print(row(name, values))
    p50 = percentile(times["node"], 50)
    print(
        f"node p50 / C-ECHO p50 {p50 / percentile(times['C-ECHO'], 50):.1f}x, node p50 / bare SCP p50 "
        f"{p50 / percentile(times['bare SCP'], 50):.2f}x; node p50 {'under' if p50 < 50 else 'OVER'} 50 ms"
    )
    cores = os.cpu_count()
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min; {cores} cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
