"""From a PACS's C-STORE to the results stored back in the PACS, with a real Orthanc as the PACS.

    .venv/bin/python bench/dicom_roundtrip.py                 # 5 ceph and 5 pano films, real models
    .venv/bin/python bench/dicom_roundtrip.py --films 3

Starts its own redis-server, an Orthanc (tests/dicom/orthanc.py: Debian's orthanc), `dentalai dicom`
(Orthanc's AE title -> client `pacs`, which keeps identifiers and exports to Orthanc by C-STORE),
the real worker (models/, ONNX Runtime on the CPU) and the dispatcher (which sends the exports).
For each film: upload the DICOM to Orthanc, ask Orthanc to C-STORE it to the node (the clock
starts), and poll Orthanc until the source study holds the SR and the Secondary Capture (the clock
stops). The baseline, from the same tasks, is the worker's own processing time (Task timing
processingMs): the ratio says what the DICOM path (queueing, artifacts, export, Orthanc storing)
adds to the analysis itself.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from tests import real_films  # noqa: E402
from tests.conftest import Processes, api_key, client_entry, start_redis  # noqa: E402
from tests.dicom import films  # noqa: E402
from tests.dicom.node import PACS, node_settings, wait_final  # noqa: E402
from tests.dicom.orthanc import start_orthanc  # noqa: E402
from tests.exports.conftest import destinations  # noqa: E402

CEPHS = sorted((real_films.DATA / "ceph" / "isbi2015_fullres" / "images").glob("*.png"))


def ceph_instances(n: int) -> list:  # noqa: ANN401
    out = []
    for path in CEPHS[:n]:
        pixels = np.asarray(Image.open(path).convert("L"))
        out.append(films.instance(
            pixels, Modality="DX", BodyPartExamined="SKULL", ViewPosition="LL", SeriesDescription="LAT CEPH",
            PixelSpacing=[0.1, 0.1], ImagerPixelSpacing=[0.1, 0.1],
        ))  # fmt: skip
    return out


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--films", type=int, default=5, help="ceph films; the pano film is sent as often")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dicom-roundtrip-"))
    redis_server = start_redis(work / "redis")
    orthanc = start_orthanc(work / "orthanc")
    client = client_entry(PACS, api_key(PACS), deidentify=False, export_to="pacs")
    settings = node_settings(
        redis_server.url, {"ORTHANC": PACS}, clients=[client],
        exports={"destinations": destinations(orthanc)[:1]},
        worker={"models_dir": str(REPO / "models")}, tasks={"task_timeout_s": 120},
    )  # fmt: skip
    procs = Processes(log_dir=work)
    rows: list[tuple[str, float, float]] = []
    try:
        procs.start(["dicom"], settings, wait_line="dicom node ready")
        procs.start(["worker"], settings, wait_line="worker ready", timeout=180)
        procs.start(["dispatcher"], settings, wait_line="dispatcher started")
        orthanc.add_modality("dentalai", "DENTALAI", "127.0.0.1", settings.dicom.port)
        sent = [("ceph", ds) for ds in ceph_instances(args.films)]
        sent += [("pano", films.pano_film()) for _ in range(args.films)]
        for kind, ds in sent:
            source = orthanc.upload(films.encode(ds))
            study = orthanc.rest("GET", f"/instances/{source}/study").json()["ID"]
            start = time.monotonic()
            orthanc.store_to("dentalai", [source])
            while len(orthanc.rest("GET", f"/studies/{study}/instances").json()) < 3:
                if time.monotonic() - start > 300:
                    raise TimeoutError(f"{kind}: results not in Orthanc after 300 s")
                time.sleep(0.05)
            total = time.monotonic() - start
            task = wait_final(settings, PACS, ds.SOPInstanceUID)
            rows.append((kind, total, task.timing.processing_ms / 1000))
            print(f"{kind}  C-STORE -> results in Orthanc {total:6.2f} s   worker processing "
                  f"{task.timing.processing_ms / 1000:6.2f} s", flush=True)  # fmt: skip
    finally:
        procs.stop_all()
        orthanc.stop()
        redis_server.stop()
    for kind in ("ceph", "pano"):
        mine = [r for r in rows if r[0] == kind]
        total = statistics.median(r[1] for r in mine)
        processing = statistics.median(r[2] for r in mine)
        print(f"{kind}: median C-STORE -> results in Orthanc {total:.2f} s, worker processing "
              f"{processing:.2f} s, ratio {total / processing:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
