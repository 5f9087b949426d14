"""Decode one file with grpc_server.decode.decode_image in this process and print one JSON line:
the answer (11002 and its message, or the image's shape and dtype), the seconds it took, and the
process's peak resident memory (VmHWM, KiB) after the imports and after decoding. The limits are
the configured defaults (dentalai/config.yaml). test_hostile_decode_memory runs it as a child
process so that each file's peak is its own.

    python -m tests.security.decode_probe FILE
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def peak_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def main(path: str) -> None:
    from dentalai.config import load_config
    from dentalai.errors import DentalAIError
    from grpc_server.decode import decode_image

    limits = load_config(environ={}).limits
    data = Path(path).read_bytes()
    base = peak_kib()
    answer: dict[str, object] = {}
    start = time.perf_counter()
    try:
        image = decode_image(data, limits.max_image_pixels, limits.max_decoded_bytes)
    except DentalAIError as err:
        answer = {"code": int(err.code), "message": err.message}
    else:
        answer = {"code": 0, "shape": list(image.pixels.shape), "dtype": str(image.pixels.dtype)}
    answer.update(seconds=round(time.perf_counter() - start, 2), base_kib=base, peak_kib=peak_kib())
    print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
