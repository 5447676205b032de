"""Ingest under hostile input: every request gets 200, 400, 401, 408 or 413, promptly.

Never a 5xx while Redis is up, never a hang, and the app keeps serving afterwards. A 200
means the exact bytes are in the stream; anything else means nothing was stored.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from typing import cast

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lull.common.signing import sign
from lull.common.store.keys import Keys
from lull.ingest.settings import DEFAULT_MAX_BODY_BYTES
from tests.hostile.bodies import (
    BAD_UTF8,
    HOSTILE_BODIES,
    UNICODE_EDGES,
    Body,
    huge_array,
    nested,
    text_body,
)
from tests.hostile.conftest import SECRET, IngestClient

HOSTILE = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Far above what any of these requests needs; only a hang would reach it.
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=20)
SIGNATURES = ("good", "missing", "other_secret", "other_body", "malformed", "sha1_only", "upper")
LONE_SURROGATES = frozenset(("\\ud800", "\\udfff", "\\ud83d", "\\ude00\\ud83d"))


def envelope_ok(body: bytes) -> bool:
    """What ingest accepts: a JSON object with a string "object" and a list "entry"."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return (
        isinstance(doc, dict)
        and isinstance(doc.get("object"), str)
        and isinstance(doc.get("entry"), list)
    )


def signature_headers(body: bytes, how: str) -> dict[str, str]:
    """X-Hub-Signature-256 as an honest, careless or hostile sender would set it."""
    match how:
        case "good":
            return {"X-Hub-Signature-256": sign(SECRET, body)}
        case "upper":
            # Hex digits in capitals are the same signature.
            return {"X-Hub-Signature-256": "sha256=" + sign(SECRET, body)[7:].upper()}
        case "other_secret":
            return {"X-Hub-Signature-256": sign("not-" + SECRET, body)}
        case "other_body":
            return {"X-Hub-Signature-256": sign(SECRET, body + b" ")}
        case "malformed":
            return {"X-Hub-Signature-256": "sha256=" + "g" * 64}
        case "sha1_only":
            return {"X-Hub-Signature": "sha1=" + "0" * 40}
    return {}


def expected_status(body: bytes, how: str) -> int:
    """Size first (before reading), then signature, then the envelope."""
    if len(body) > DEFAULT_MAX_BODY_BYTES:
        return 413
    if how not in ("good", "upper"):
        return 401
    return 200 if envelope_ok(body) else 400


async def stored_bodies(redis: aioredis.Redis, keys: Keys) -> list[bytes]:
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(keys.inbound()))
    return [fields[b"body"] for _id, fields in entries]


async def post_and_check(
    client: IngestClient, redis: aioredis.Redis, keys: Keys, body: bytes, how: str
) -> int:
    """POST body; assert the status, that exactly the 200s were stored, and that ingest lives."""
    before = await redis.xlen(keys.inbound())
    # BytesIO: aiohttp's client warns about large bytes bodies (it still sends a length).
    response = await client.post(
        "/webhook",
        data=io.BytesIO(body),
        headers=signature_headers(body, how),
        timeout=REQUEST_TIMEOUT,
    )
    await response.read()
    assert response.status == expected_status(body, how), (how, body[:200])
    after = cast(list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(keys.inbound()))
    if response.status == 200:
        assert len(after) == before + 1
        assert after[-1][1][b"body"] == body
    else:
        assert len(after) == before
    health = await client.get("/healthz", timeout=REQUEST_TIMEOUT)
    assert health.status == 200
    return response.status


@HOSTILE
@given(body=HOSTILE_BODIES, how=st.sampled_from(SIGNATURES))
async def test_any_body_any_signature(
    ingest: IngestClient, redis: aioredis.Redis, namespace: str, body: Body, how: str
) -> None:
    await post_and_check(ingest, redis, Keys(namespace), body.data, how)


@pytest.mark.parametrize("edge", UNICODE_EDGES)
async def test_unicode_edge_cases(
    ingest: IngestClient, redis: aioredis.Redis, namespace: str, edge: str
) -> None:
    body = text_body("messenger", "u1", "m1", "@@", 1763800000000).replace(
        b"@@", edge.encode("utf-8", "surrogatepass")
    )
    status = await post_and_check(ingest, redis, Keys(namespace), body, "good")
    # orjson refuses a lone surrogate escape (not Unicode); everything else is stored verbatim.
    assert status == (400 if edge in LONE_SURROGATES else 200)


@pytest.mark.parametrize("junk", BAD_UTF8, ids=lambda b: b.hex())
async def test_bytes_that_are_not_utf8(
    ingest: IngestClient, redis: aioredis.Redis, namespace: str, junk: bytes
) -> None:
    body = text_body("whatsapp", "u1", "m1", "@@", 1763800000000).replace(b"@@", junk)
    assert await post_and_check(ingest, redis, Keys(namespace), body, "good") == 400
    assert await post_and_check(ingest, redis, Keys(namespace), junk, "good") == 400


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000, nested(100_000), nested(100_000, b"{"), b'{"object":"page","entry":'
     + b"[" * 100_000 + b"]" * 100_000 + b"}"],
    ids=["open", "closed", "objects", "in_entry"],
)  # fmt: skip
async def test_100k_levels_of_nesting(
    ingest: IngestClient, redis: aioredis.Redis, namespace: str, body: bytes
) -> None:
    started = time.monotonic()
    assert await post_and_check(ingest, redis, Keys(namespace), body, "good") == 400
    assert time.monotonic() - started < 5


async def test_huge_array_just_under_the_limit(
    ingest: IngestClient, redis: aioredis.Redis, namespace: str
) -> None:
    body = huge_array((DEFAULT_MAX_BODY_BYTES - 40) // 2)
    assert len(body) <= DEFAULT_MAX_BODY_BYTES
    # Ingest checks the envelope only: the processor decides what the items are.
    assert await post_and_check(ingest, redis, Keys(namespace), body, "good") == 200


def exactly(size: int) -> bytes:
    """A valid envelope of exactly size bytes."""
    prefix, suffix = b'{"object": "whatsapp_business_account", "entry": [], "pad": "', b'"}'
    return prefix + b"x" * (size - len(prefix) - len(suffix)) + suffix


async def test_exactly_3_mib_is_stored_and_one_byte_more_is_413(
    ingest: IngestClient, redis: aioredis.Redis, namespace: str
) -> None:
    keys = Keys(namespace)
    limit = DEFAULT_MAX_BODY_BYTES
    assert limit == 3 * 1024 * 1024
    assert await post_and_check(ingest, redis, keys, exactly(limit), "good") == 200
    assert await post_and_check(ingest, redis, keys, exactly(limit + 1), "good") == 413
    # Without Content-Length (chunked) the limit applies while reading.
    over = exactly(limit + 1)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(over), 64 * 1024):
            yield over[start : start + 64 * 1024]

    for data in (chunks(), io.BytesIO(over)):
        response = await ingest.post(
            "/webhook", data=data, headers=signature_headers(over, "good"), timeout=REQUEST_TIMEOUT
        )
        assert response.status == 413
    assert len(await stored_bodies(redis, keys)) == 1


async def raw_exchange(client: IngestClient, request: bytes, *, then: bytes = b"") -> bytes:
    """Send raw bytes (then more after a moment) and return the start of the answer."""
    server = client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request)
        await writer.drain()
        if then:
            await asyncio.sleep(0.05)  # the handler is reading the body by now
            writer.write(then)
            await writer.drain()
        async with asyncio.timeout(15):
            return await reader.read(200)
    finally:
        writer.close()


POST = b"POST /webhook HTTP/1.1\r\nHost: lull\r\n"
LENGTH_2 = b"Content-Length: 2\r\n\r\n{}"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"\x00\xff NOT HTTP\r\n\r\n",
        POST + b"Content-Length: abc\r\n\r\n",
        POST + b"Content-Length: -1\r\n\r\n",
        POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        POST + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n",
        POST + b"X-Long: " + b"a" * 20_000 + b"\r\n\r\n",
        b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n",
        POST + b"".join(b"X-%d: a\r\n" % n for n in range(300)) + b"Content-Length: 2\r\n\r\n{}",
        POST + b"X-Hub-Signature-256: sha256=\xff\xfe" + b"a" * 62 + b"\r\n" + LENGTH_2,
    ],
    ids=["not_http", "bad_length", "negative_length", "length_and_chunked", "bad_chunk",
         "long_header", "long_url", "many_headers", "binary_signature"],
)  # fmt: skip
async def test_broken_http_is_4xx(
    ingest: IngestClient, redis: aioredis.Redis, namespace: str, request_bytes: bytes
) -> None:
    answer = await raw_exchange(ingest, request_bytes)
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500, answer
    assert await stored_bodies(redis, Keys(namespace)) == []
    assert (await ingest.get("/healthz", timeout=REQUEST_TIMEOUT)).status == 200


@pytest.mark.parametrize(
    ("head", "then"),
    [
        (POST + b"Content-Length: 1000\r\n\r\n{", b""),
        # aiohttp never wakes a reader for a broken chunk that arrives after the headers.
        (POST + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", b"ZZ\r\n"),
    ],
    ids=["stalled", "late_bad_chunk"],
)
async def test_stalled_body_is_408_and_blocks_nobody(
    base_env: dict[str, str],
    redis: aioredis.Redis,
    namespace: str,
    head: bytes,
    then: bytes,
) -> None:
    from aiohttp.test_utils import TestClient, TestServer  # noqa: PLC0415

    from lull.ingest.app import create_app  # noqa: PLC0415
    from lull.ingest.settings import IngestSettings  # noqa: PLC0415

    env = {**base_env, "LULL_APP_SECRET": SECRET, "LULL_VERIFY_TOKEN": "t",
           "LULL_INGEST_READ_TIMEOUT_MS": "400"}  # fmt: skip
    async with TestClient(TestServer(create_app(IngestSettings.from_env(env)))) as client:
        started = time.monotonic()
        stalled = asyncio.create_task(raw_exchange(client, head, then=then))
        body = text_body("instagram", "u1", "m1", "meanwhile", 1763800000000)
        # Other requests are answered while the stalled one waits.
        assert await post_and_check(client, redis, Keys(namespace), body, "good") == 200
        answer = await stalled
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert time.monotonic() - started < 5
        assert await stored_bodies(redis, Keys(namespace)) == [body]
