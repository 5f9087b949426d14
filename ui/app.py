"""Tester UI (Gradio): upload a radiograph, watch the task, see the result drawn on the image.

Submits through the REST API by default (`--backend grpc` uses the gRPC client), polls the task
until it is final, then shows the overlay, the measurement and class tables and the raw JSON.
The page also answers `POST /ui-callback` (204) so that the UI can name itself as the required
callbackUrl; the service delivers there only when its allow-list admits that host.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
from fastapi import FastAPI, Response

from dentalai import overlay
from dentalai.config import Settings, load_config
from dentalai.contract import FINAL_STATUS_NAMES, FINDING_TYPES
from dentalai.errors import DentalAIError
from pipelines.registry import TASK_TYPES
from ui import views
from ui.artifact_downloads import save_artifacts
from ui.backend import Backend, GrpcBackend, RestBackend, ServiceUnreachable

CALLBACK_PATH = "/ui-callback"


@dataclass(frozen=True)
class UIConfig:
    backend: str = "rest"  # "rest" or "grpc"
    api_url: str = "http://127.0.0.1:8000"
    grpc_target: str = "127.0.0.1:50051"
    token: str | None = None
    # Empty: http://localhost:<port>/ui-callback (a hostname, so submission accepts it as a literal).
    callback_url: str = ""
    host: str = "127.0.0.1"
    port: int = 7860
    poll_interval_s: float = 0.5
    wait_timeout_s: float = 600.0

    @property
    def effective_callback_url(self) -> str:
        return self.callback_url or f"http://localhost:{self.port}{CALLBACK_PATH}"


def _local(host: str) -> str:
    # A server bound to every interface is reached on loopback from the same machine.
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def config_from_settings(settings: Settings) -> UIConfig:
    """UIConfig from the service Settings (`ui`, else `api`/`grpc`), as every process reads them:
    config file, then DENTALAI_* variables (DENTALAI_UI_BACKEND and DENTALAI_UI__BACKEND alike).
    The UI is a client like any other: its API key is DENTALAI_TOKEN, the CLI's key variable
    (`dentalai up` sets it to the demo client's key); the configuration holds only key digests."""
    ui = settings.ui
    api_url = ui.api_url or f"http://{_local(settings.api.host)}:{settings.api.port}"
    grpc_target = ui.grpc_target or f"{_local(settings.grpc.host)}:{settings.grpc.port}"
    return UIConfig(
        backend=ui.backend,
        api_url=api_url,
        grpc_target=grpc_target,
        token=os.environ.get("DENTALAI_TOKEN") or None,
        callback_url=ui.callback_url,
        host=ui.host,
        port=ui.port,
    )


def make_backend(cfg: UIConfig) -> Backend:
    if cfg.backend == "grpc":
        return GrpcBackend(cfg.grpc_target, cfg.effective_callback_url, cfg.token)
    return RestBackend(cfg.api_url, cfg.effective_callback_url, cfg.token)


def _frame(columns: list[str], rows: list[list[Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


class Analysis:
    """The Submit button: a generator, so Gradio streams each status change to the page."""

    def __init__(self, cfg: UIConfig, backend: Backend) -> None:
        self.cfg = cfg
        self.backend = backend
        self.out_dir = Path(tempfile.mkdtemp(prefix="dentalai-ui-"))

    def __call__(
        self, file: str | None, task_type: str, spacing: float | None, numbering: str,
        findings: list[str] | None = None,
    ) -> Iterator[tuple[Any, ...]]:
        # Cleared outputs: a new submission must not leave the previous result on screen.
        empty = (None, _frame([], []), _frame([], []), None, None)
        if not file:
            yield (views.error_markdown(None, "choose an image file first"), *empty)
            return
        path = Path(file)
        raw = path.read_bytes()
        options: dict[str, Any] = {}
        if spacing:
            options["pixelSpacingMm"] = float(spacing)
        if task_type == "pano" and numbering:
            options["toothNumbering"] = numbering
        if task_type == "pano" and findings:
            options["findings"] = list(findings)
        try:
            task = self.backend.submit(task_type, raw, options)
            yield (views.status_markdown(task, self.backend.description), *empty)
            deadline = time.monotonic() + self.cfg.wait_timeout_s
            last = task.get("status")
            while task.get("status") not in FINAL_STATUS_NAMES and time.monotonic() < deadline:
                time.sleep(self.cfg.poll_interval_s)
                task = {**task, **self.backend.get(task["taskId"])}
                if task.get("status") != last:
                    last = task.get("status")
                    yield (views.status_markdown(task, self.backend.description), *empty)
        except DentalAIError as err:
            yield (views.error_markdown(int(err.code), _with_details(err)), *empty)
            return
        except ServiceUnreachable as err:
            yield (views.error_markdown(None, f"service unreachable: {err}"), *empty)
            return
        yield self._final(task, path, raw)

    def _final(self, task: dict[str, Any], path: Path, raw: bytes) -> tuple[Any, ...]:
        status = views.status_markdown(task, self.backend.description)
        data = views.task_result(task)
        if task.get("status") not in FINAL_STATUS_NAMES:
            status += (
                f"\n\nstill {task.get('status')} after {self.cfg.wait_timeout_s:.0f} s; look it up later"
            )
        if data is None:
            return status, None, _frame([], []), _frame([], []), task, None
        image = None
        try:
            image = overlay.render(overlay.decode_for_display(raw), data)
        except (ValueError, OSError) as err:
            status += f"\n\n(overlay not drawn: {err})"
        files = [self.out_dir / f"{path.stem}.json"]
        files[0].write_text(json.dumps(data, indent=2) + "\n")
        if image is not None:
            files.append(self.out_dir / f"{path.stem}.overlay.png")
            files[1].write_bytes(overlay.encode_png(image))
        saved, problem = save_artifacts(self.backend, task, self.out_dir, path.stem)
        files += saved
        if problem:
            status += f"\n\n({problem})"
        return (
            status,
            image,
            _frame(*views.measurement_rows(data)),
            _frame(*views.class_rows(data)),
            task,
            [str(f) for f in files],
        )


def _with_details(err: DentalAIError) -> str:
    if not err.details:
        return err.message
    return err.message + " (" + "; ".join(f"{f}: {r}" for f, r in err.details) + ")"


def build_ui(cfg: UIConfig, backend: Backend | None = None) -> gr.Blocks:
    backend = backend or make_backend(cfg)
    with gr.Blocks(title="dentalai tester") as demo:
        gr.Markdown(f"# dentalai tester\nSubmits to {backend.description}; results are drawn on the image.")
        with gr.Row():
            with gr.Column(scale=1):
                file = gr.File(
                    label="Radiograph (PNG, JPEG or DICOM)",
                    file_types=[".png", ".jpg", ".jpeg", ".dcm", ".dicom"],
                    type="filepath",
                    elem_id="upload",
                )
                task_type = gr.Radio(list(TASK_TYPES), value="ceph", label="taskType", elem_id="task-type")
                spacing = gr.Number(
                    label="pixelSpacingMm (0: from DICOM or the default)",
                    value=None,
                    minimum=0,
                    elem_id="spacing",
                )
                numbering = gr.Radio(
                    ["FDI", "UNIVERSAL"], value="FDI", label="toothNumbering (pano)", elem_id="numbering"
                )
                findings = gr.CheckboxGroup(
                    list(FINDING_TYPES), value=[], elem_id="findings",
                    label="findings (pano; none ticked: the model's default types)",
                )
                submit = gr.Button("Analyze", variant="primary", elem_id="submit")
                status = gr.Markdown("Choose an image and press Analyze.", elem_id="status")
                downloads = gr.File(
                    label="Downloads (JSON, overlay PNG, PDF report, DICOM SR and captures)",
                    file_count="multiple",
                    elem_id="downloads",
                )
            with gr.Column(scale=2):
                image = gr.Image(label="Overlay", type="numpy", elem_id="overlay", interactive=False)
                measurements = gr.Dataframe(label="Measurements / teeth", elem_id="measurements", wrap=True)
                classes = gr.Dataframe(label="Classes / summary", elem_id="classes", wrap=True)
                raw = gr.JSON(label="Raw task JSON", elem_id="raw-json")
        analysis = Analysis(cfg, backend)

        def run(
            file: str | None, task_type: str, spacing: float | None, numbering: str, findings: list[str]
        ) -> Iterator[tuple[Any, ...]]:
            # Gradio streams only from a generator function, not from a callable object.
            yield from analysis(file, task_type, spacing, numbering, findings)

        submit.click(
            run,
            inputs=[file, task_type, spacing, numbering, findings],
            outputs=[status, image, measurements, classes, raw, downloads],
        )
    return demo


def make_app(cfg: UIConfig, backend: Backend | None = None) -> FastAPI:
    """The UI page at / and the callback sink at /ui-callback."""
    app = FastAPI(title="dentalai tester UI")

    @app.post(CALLBACK_PATH, status_code=204)
    def callback_sink() -> Response:
        # The page polls the task; a delivered callback only needs acknowledging.
        return Response(status_code=204)

    return gr.mount_gradio_app(app, build_ui(cfg, backend), path="/")


def serve(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """Run the UI until interrupted; the entry `dentalai up` uses."""
    import uvicorn

    cfg = config_from_settings(settings)
    cfg = replace(cfg, host=host or cfg.host, port=port or cfg.port)
    uvicorn.run(make_app(cfg), host=cfg.host, port=cfg.port, log_level="warning")


def main(argv: Sequence[str] | None = None) -> int:
    """`dentalai ui [--backend rest|grpc] [--api-url URL] [--grpc HOST:PORT] [--host H] [--port P]`."""
    parser = argparse.ArgumentParser(prog="dentalai ui", description="Gradio tester UI")
    parser.add_argument("--backend", choices=["rest", "grpc"])
    parser.add_argument("--api-url", help="REST base URL (default: from config api.host/port)")
    parser.add_argument("--grpc", dest="grpc_target", help="gRPC HOST:PORT (default: from config)")
    parser.add_argument("--callback-url", help="callbackUrl sent with submissions")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    cfg = config_from_settings(load_config())
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    cfg = replace(cfg, **overrides)
    import uvicorn

    print(f"dentalai UI on http://{cfg.host}:{cfg.port}/ ({cfg.backend})", flush=True)
    uvicorn.run(make_app(cfg), host=cfg.host, port=cfg.port, log_level="warning")
    return 0
