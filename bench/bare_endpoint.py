"""The baseline of bench/submit_latency.py: a bare FastAPI endpoint on the same route and body model
as the REST bridge, answering 202 at once, with no gRPC call, no Redis and no middleware.

    .venv/bin/python -m uvicorn bench.bare_endpoint:app --port 8100
"""

from __future__ import annotations

import uuid

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from rest_bridge.models import AnalyzeBody

app = FastAPI()


@app.post("/api/v1/analyze", status_code=202)
async def analyze(body: AnalyzeBody) -> JSONResponse:
    data = {"taskId": body.taskId or uuid.uuid4().hex, "status": "QUEUED"}
    return JSONResponse({"code": 0, "message": "accepted", "data": data}, status_code=202)
