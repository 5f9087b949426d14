"""Decoding any file within the upload limit stays under a memory bound: each file of
tests/security/hostile_corpus.py goes through decode_image in a child process of its own
(tests/security/decode_probe.py, the default limits), whose peak resident memory (VmHWM, the
interpreter included) must stay under BOUND, the 1 GiB grpc_server/decode.py states for the default
limits. Bombs and lies answer 11002 with a message that says what was wrong (sizes only, no patient
data); the largest images the limits allow, and files whose junk is never read, decode.

Before bounded decoding the deflate bomb took 28 s and over 6 GiB (and was killed here), a deflated
largest image 1.9 GB, 2 million empty DICOM sequence items 1.4 GB and 26 s, an RLE bomb 1.2 GB, a
DICOM whose JPEG is bigger than its header 2.7 GB, and a 100 MP float TIFF 2 GB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.security.hostile_corpus import CASES, PATIENT_ID, PATIENT_NAME, Case, build, deflate_zeros

BOUND_KIB = 2**20  # 1 GiB
KILL_KIB = 2 * BOUND_KIB  # a child over this is stopped at once: a failure, not a 7 GB wait
TIMEOUT_S = 60.0

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc/<pid>/status")


def _vm_hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_probe(path: Path) -> dict:
    """decode_probe's answer for `path`, or {"killed": reason, "peak_kib": ...} when the child went
    over KILL_KIB or TIMEOUT_S (watched from here every 20 ms)."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env = {k: v for k, v in env.items() if not k.startswith("DENTALAI_")}  # the defaults
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.security.decode_probe", str(path)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline, peak, killed = time.monotonic() + TIMEOUT_S, 0, ""
    while proc.poll() is None:
        peak = max(peak, _vm_hwm_kib(proc.pid))
        if peak > KILL_KIB or time.monotonic() > deadline:
            killed = f"over {KILL_KIB} KiB" if peak > KILL_KIB else f"over {TIMEOUT_S} s"
            proc.kill()
            break
        time.sleep(0.02)
    out, err = proc.communicate()
    if killed:
        return {"killed": killed, "peak_kib": peak}
    lines = out.decode().strip().splitlines()
    assert proc.returncode == 0 and lines, f"probe failed ({proc.returncode}): {err.decode()[-2000:]}"
    return json.loads(lines[-1])


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_decoding_stays_under_the_memory_bound(case: Case, tmp_path: Path) -> None:
    path = tmp_path / case.name
    path.write_bytes(build(case.name))
    answer = run_probe(path)
    assert "killed" not in answer, f"{case.name}: stopped {answer['killed']}"
    peak = answer["peak_kib"]
    assert peak < BOUND_KIB, f"{case.name}: peak {peak // 1024} MiB, bound {BOUND_KIB // 1024} MiB"
    if case.expect == "refused":
        assert answer["code"] == 11002, f"{case.name}: {answer}"
        assert case.says in answer["message"], f"{case.name}: {answer['message']!r}"
        assert PATIENT_NAME not in answer["message"] and PATIENT_ID not in answer["message"]
    else:
        assert answer["code"] == 0, f"{case.name}: {answer}"
        assert tuple(answer["shape"]) == case.shape


@pytest.mark.parametrize("wrap", [False, True])
def test_the_corpus_deflate_streams_are_exact(wrap: bool) -> None:
    # Three repeated blocks and a rest: inflates to exactly prefix + zeros + suffix, and the
    # zlib-wrapped stream's Adler-32 (checked by zlib) is right.
    total = 3 * 16 * 2**20 + 12345
    stream = deflate_zeros(total, prefix=b"head", suffix=b"tail", wrap=wrap)
    data = zlib.decompress(stream, zlib.MAX_WBITS if wrap else -zlib.MAX_WBITS)
    assert data == b"head" + bytes(total) + b"tail"
