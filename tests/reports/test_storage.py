"""What a finished task's artifacts cost in Redis (issue 31 item 5): a file that deflates well is
kept deflated and served as it was made; a real ceph film's artifacts stay within 2 x its upload +
1 MiB (`bench/storage.py` measures more films)."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from artifacts.make import Source, make_artifacts
from dentalai.task_json import message_dict
from grpc_server.artifact_store import PACKED, ArtifactStore
from grpc_server.decode import decode_image
from grpc_server.keys import Keys, TaskRef
from tests.conftest import RedisServer
from tests.reports import samples

ISBI = samples.FULLRES / "images" / "100.png"


@pytest.fixture
async def store(redis_server: RedisServer):
    redis = aioredis.Redis.from_url(redis_server.url)
    yield redis, ArtifactStore(redis, Keys("storage-test:"), 600)
    await redis.aclose()


async def test_files_that_deflate_well_are_kept_deflated_and_served_whole(store, ceph_png):
    redis, artifacts = store
    files = ceph_png[1]
    ref = TaskRef("c", "stored-1")
    await artifacts.put(ref, files)
    stored = await redis.hgetall(Keys("storage-test:").artifacts(ref))
    fields = {field.decode(): len(value) for field, value in stored.items()}
    assert fields["report.dcm" + PACKED] < len(files["report.dcm"]) / 4  # the SR: text and codes
    for name in ("overlay.png", "report.pdf", "overlay.dcm", "image.dcm"):
        assert fields[name] == len(files[name])  # compressed already: kept as they are
    for name, data in files.items():
        assert await artifacts.get(ref, name) == data
    assert await artifacts.get(ref, "nothing.dcm") is None


@pytest.mark.skipif(not ISBI.exists(), reason="../shared/data (ISBI full-resolution images) is absent")
async def test_a_ceph_films_artifacts_take_at_most_twice_its_upload_and_a_mebibyte(store):
    """Before: an uncompressed image.dcm alone (4.6 MB) was 2.8x this 1.6 MB PNG upload."""
    redis, artifacts = store
    raw = ISBI.read_bytes()
    image = decode_image(raw, 10**8)
    src = Source("ceph", message_dict(samples.ceph_result()), image.pixels, raw, "png", "budget-1")
    ref = TaskRef("c", "budget-1")
    await artifacts.put(ref, make_artifacts(src, 1600))
    used = await redis.memory_usage(Keys("storage-test:").artifacts(ref), samples=0)
    assert used <= 2 * len(raw) + (1 << 20), (used, len(raw))
