"""Logs never carry image bytes, their base64, metadata values or imageUrl secrets: a gRPC server
and a worker at DEBUG level process successes and failures; every marker is grepped for."""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path

import numpy as np
from google.protobuf import struct_pb2
from PIL import Image, PngImagePlugin

from dentalai.v1 import task_pb2
from tests.backbone.helpers import code_of, stub, submit_request, wait_status
from tests.conftest import CallbackReceiver, Processes, RedisServer, make_settings

FINAL = {task_pb2.SUCCEEDED, task_pb2.FAILED}
MARKERS = ["IMG-TEXT-MARKER-7f3a", "META-SECRET-1", "META-SECRET-2", "GARBAGE-MARKER-91c2", "URL-SECRET-5d"]
MARKERS += ["PASS-SECRET-0e", "BIG-META-SECRET"]


def marked_png() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", MARKERS[0])
    buffer = io.BytesIO()
    pixels = np.random.default_rng(3).integers(0, 255, (300, 320), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def test_logs_hold_no_image_bytes_base64_metadata_or_url_secrets(
    redis_server: RedisServer, processes: Processes, callback_receiver: CallbackReceiver, tmp_path: Path
) -> None:
    settings = make_settings(
        redis_server.url, log={"level": "DEBUG"}, worker={"models_dir": str(tmp_path)}
    )
    server = processes.start(["grpc"], settings, wait_port=settings.grpc.port)
    worker = processes.start([], settings, module="tests.backbone.echo_worker", wait_line="worker ready")
    channel, client = stub(f"127.0.0.1:{settings.grpc.port}")
    image = marked_png()
    callback_receiver.files["/pano.png"] = image
    metadata = struct_pb2.Struct()
    metadata.update({"patientName": MARKERS[1], "nested": {"id": MARKERS[2]}})
    port = callback_receiver.server.server_port
    requests = [
        submit_request(callback_receiver.url, image_data=image, metadata=metadata),
        submit_request(callback_receiver.url, image_data=MARKERS[3].encode() * 50, metadata=metadata),
        submit_request(
            callback_receiver.url, image_data=None, image_url=f"http://127.0.0.1:{port}/missing?sig={MARKERS[4]}"
        ),
        submit_request(
            callback_receiver.url, image_data=None, image_url=f"http://u:{MARKERS[5]}@127.0.0.1:{port}/pano.png"
        ),
    ]
    try:
        ids = [client.SubmitAnalysis(r).task_id for r in requests]
        finals = [wait_status(client, task_id, FINAL) for task_id in ids]
        assert [t.status for t in finals][:1] == [task_pb2.SUCCEEDED]
        assert [t.error.code for t in finals[1:3]] == [11002, 11001]
        big = struct_pb2.Struct()
        big.update({"blob": MARKERS[6] * 2000})
        too_big = submit_request(callback_receiver.url, metadata=big)
        assert code_of(lambda: client.SubmitAnalysis(too_big))[1] == 10001
    finally:
        channel.close()
    time.sleep(0.3)
    processes.stop(server)
    processes.stop(worker)
    paths = [Path(p.log_path) for p in (server, worker)]  # type: ignore[attr-defined]
    logs = "".join(path.read_text(errors="replace") for path in paths)
    assert ids[0] in logs, "the logs must at least carry the task ids"
    leaked = [m for m in MARKERS if m in logs]
    assert not leaked, f"log lines carry {leaked}"
    encoded = base64.b64encode(image).decode()
    for offset in (0, 1000, 5000):
        assert encoded[offset:offset + 40] not in logs
    assert "iVBORw0KGgo" not in logs  # base64 of the PNG signature: no image at all
    assert not any(ord(c) < 9 for c in logs), "raw binary in the logs"


def test_marker_png_really_contains_the_marker() -> None:
    assert MARKERS[0].encode() in marked_png()
