"""Runs AnalysisService with grpc.health.v1 and reflection (grpc.reflection) on grpc.host:grpc.port."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from dentalai.config import Settings
from dentalai.v1 import analysis_service_pb2 as pb
from dentalai.v1 import analysis_service_pb2_grpc as pb_grpc
from grpc_server.clients import Clients
from grpc_server.connection import redis_client
from grpc_server.service import AnalysisService
from grpc_server.status import AuthInterceptor

log = logging.getLogger(__name__)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AnalysisService"].full_name


async def build_server(settings: Settings) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """The configured server, bound but not started, with its bound port and health servicer."""
    server = grpc.aio.server(
        interceptors=[AuthInterceptor(Clients(settings.auth))],
        options=[
            # An imageData submission may be as large as limits.max_image_bytes plus the rest.
            ("grpc.max_receive_message_length", settings.limits.max_image_bytes + 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ],
    )
    service = AnalysisService(settings, redis_client(settings))
    pb_grpc.add_AnalysisServiceServicer_to_server(service, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    if settings.grpc.reflection:
        names = (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, server)
    address = f"{settings.grpc.host}:{settings.grpc.port}"
    if settings.grpc.tls_cert:
        credentials = grpc.ssl_server_credentials(
            [(Path(settings.grpc.tls_key).read_bytes(), Path(settings.grpc.tls_cert).read_bytes())]
        )
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    return server, port, health_servicer


async def serve(settings: Settings) -> None:
    server, port, health_servicer = await build_server(settings)
    await server.start()
    log.info("gRPC server listening", extra={"address": f"{settings.grpc.host}:{port}"})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await health_servicer.enter_graceful_shutdown()  # probes see NOT_SERVING while calls drain
    await server.stop(grace=5)


def main(settings: Settings) -> None:
    uvloop.run(serve(settings))
