"""The webhook endpoints, driven through the real app on a loopback server."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest
import redis.asyncio as aioredis

from lull.common.signing import sign
from lull.common.store.keys import Keys
from lull.dev.embedded_redis import EmbeddedRedis, free_port
from tests.conftest import FIXTURES
from tests.ingest.conftest import SECRET, VERIFY_TOKEN, ClientFactory, scrape

BODY = b'{"object":"page","entry":[{"id":"1","time":1,"messaging":[]}]}'


def headers(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Hub-Signature-256": sign(secret, body), "Content-Type": "application/json"}


async def stored(redis: aioredis.Redis, namespace: str) -> list[dict[bytes, bytes]]:
    entries = cast(
        list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(Keys(namespace).inbound())
    )
    return [fields for _id, fields in entries]


# --- handshake -------------------------------------------------------------------------------


async def test_handshake_echoes_challenge(make_client: ClientFactory) -> None:
    client = await make_client()
    params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "12345"}
    response = await client.get("/webhook", params=params)
    assert response.status == 200
    assert response.content_type == "text/plain"
    assert await response.text() == "12345"


async def test_a_challenge_longer_than_meta_sends_is_refused_not_echoed(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    base = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN}
    response = await client.get("/webhook", params={**base, "hub.challenge": "7" * 256})
    assert (response.status, await response.text()) == (200, "7" * 256)
    response = await client.get("/webhook", params={**base, "hub.challenge": "7" * 257})
    assert (response.status, await response.text()) == (400, "challenge too long")


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN},
        {},
    ],
)
async def test_handshake_refused(make_client: ClientFactory, params: dict[str, str]) -> None:
    client = await make_client()
    response = await client.get("/webhook", params=params)
    assert response.status == 403


# --- signature -------------------------------------------------------------------------------


async def test_signed_post_is_stored(
    make_client: ClientFactory, redis: aioredis.Redis, namespace: str
) -> None:
    client = await make_client()
    response = await client.post("/webhook", data=BODY, headers=headers(BODY))
    assert response.status == 200
    assert await response.read() == b""
    [fields] = await stored(redis, namespace)
    assert fields[b"body"] == BODY
    assert fields[b"sig"] == b"ok"
    assert int(fields[b"received_at"]) > 1_700_000_000_000


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({}, "missing"),
        ({"X-Hub-Signature-256": sign("not-the-secret", BODY)}, "mismatch"),
        ({"X-Hub-Signature-256": "sha256=zz"}, "malformed"),
        (
            {
                "X-Hub-Signature": "sha1="
                + hmac.new(SECRET.encode(), BODY, hashlib.sha1).hexdigest()
            },
            "missing",
        ),
    ],
)
async def test_bad_signature_is_401_and_not_stored(
    make_client: ClientFactory,
    redis: aioredis.Redis,
    namespace: str,
    extra: dict[str, str],
    reason: str,
) -> None:
    client = await make_client()
    response = await client.post("/webhook", data=BODY, headers=extra)
    assert response.status == 401
    assert await stored(redis, namespace) == []
    metrics = await scrape(client)
    assert f'lull_ingest_signature_failures_total{{reason="{reason}"}} 1.0' in metrics


async def test_any_rotated_secret_passes(
    make_client: ClientFactory, redis: aioredis.Redis, namespace: str
) -> None:
    client = await make_client(LULL_APP_SECRET="old-secret,new-secret")
    for secret in ("old-secret", "new-secret"):
        response = await client.post("/webhook", data=BODY, headers=headers(BODY, secret))
        assert response.status == 200
    wrong = await client.post("/webhook", data=BODY, headers=headers(BODY, SECRET))
    assert wrong.status == 401
    assert len(await stored(redis, namespace)) == 2


async def test_signature_is_over_raw_bytes_not_reserialised_json(
    make_client: ClientFactory, redis: aioredis.Redis, namespace: str
) -> None:
    # Meta escapes non-ASCII as \uXXXX and slashes as \/; re-serialising would change the bytes.
    body = (
        b'{"object": "page", "entry": [{"id": "1", "time": 1, "messaging": [{"message": '
        b'{"mid": "m_1", "text": "caf\\u00e9 \\u2615 \\/ na\xc3\xafve \xf0\x9f\x98\x80"}}]}]}'
    )
    client = await make_client()
    response = await client.post("/webhook", data=body, headers=headers(body))
    assert response.status == 200
    [fields] = await stored(redis, namespace)
    assert fields[b"body"] == body


async def test_insecure_mode_stores_unsigned_bodies_marked_skipped(
    make_client: ClientFactory, redis: aioredis.Redis, namespace: str
) -> None:
    client = await make_client(LULL_INSECURE_SKIP_SIGNATURE="1", LULL_APP_SECRET="")
    response = await client.post("/webhook", data=BODY)
    assert response.status == 200
    [fields] = await stored(redis, namespace)
    assert fields[b"sig"] == b"skipped"


# --- body checks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not_json"),
        (b"\xff\xfe{}", "not_json"),
        (b"[1, 2]", "not_an_object"),
        (b'{"entry": []}', "no_object"),
        (b'{"object": 5, "entry": []}', "no_object"),
        (b'{"object": "page"}', "no_entry_list"),
        (b'{"object": "page", "entry": {}}', "no_entry_list"),
    ],
)
async def test_malformed_envelope_is_400(
    make_client: ClientFactory, redis: aioredis.Redis, namespace: str, body: bytes, reason: str
) -> None:
    client = await make_client()
    response = await client.post("/webhook", data=body, headers=headers(body))
    assert response.status == 400
    assert (await response.json()) == {"error": reason}
    assert await stored(redis, namespace) == []


async def test_unknown_object_is_accepted(
    make_client: ClientFactory, redis: aioredis.Redis, namespace: str
) -> None:
    body = b'{"object": "user", "entry": []}'
    client = await make_client()
    response = await client.post("/webhook", data=body, headers=headers(body))
    assert response.status == 200
    assert len(await stored(redis, namespace)) == 1


async def test_body_over_limit_is_413(
    make_client: ClientFactory, redis: aioredis.Redis, namespace: str
) -> None:
    client = await make_client(LULL_MAX_BODY_BYTES="2048")
    body = b'{"object": "page", "entry": [], "pad": "' + b"x" * 4096 + b'"}'
    response = await client.post("/webhook", data=body, headers=headers(body))
    assert response.status == 413

    # Chunked upload: no Content-Length, so the limit applies while reading.
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    response = await client.post("/webhook", data=chunks(), headers=headers(body))
    assert response.status == 413
    assert await stored(redis, namespace) == []


async def test_body_at_default_limit_is_accepted(
    make_client: ClientFactory, redis: aioredis.Redis, namespace: str
) -> None:
    prefix, suffix = b'{"object": "whatsapp_business_account", "entry": [], "pad": "', b'"}'
    body = prefix + b"x" * (3 * 1024 * 1024 - len(prefix) - len(suffix)) + suffix
    client = await make_client()
    response = await client.post("/webhook", data=io.BytesIO(body), headers=headers(body))
    assert response.status == 200
    [fields] = await stored(redis, namespace)
    assert fields[b"body"] == body


# --- Redis failures ---------------------------------------------------------------------------


async def test_closed_port_is_503_and_not_ready(make_client: ClientFactory) -> None:
    client = await make_client(
        LULL_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", LULL_INGEST_REDIS_TIMEOUT_MS="300"
    )
    response = await client.post("/webhook", data=BODY, headers=headers(BODY))
    assert response.status == 503
    ready = await client.get("/readyz")
    assert ready.status == 503
    health = await client.get("/healthz")
    assert health.status == 200


async def test_stopped_server_is_503_then_recovers(
    make_client: ClientFactory, tmp_path: Path, namespace: str
) -> None:
    server = EmbeddedRedis(tmp_path, appendonly=False).start()
    port = server.port
    try:
        client = await make_client(LULL_REDIS_URL=server.url, LULL_INGEST_REDIS_TIMEOUT_MS="500")
        assert (await client.post("/webhook", data=BODY, headers=headers(BODY))).status == 200
        server.stop()
        response = await client.post("/webhook", data=BODY, headers=headers(BODY))
        assert response.status == 503
        server = EmbeddedRedis(tmp_path, appendonly=False, port=port).start()
        response = await client.post("/webhook", data=BODY, headers=headers(BODY))
        assert response.status == 200
        check = aioredis.Redis.from_url(server.url, socket_timeout=5)
        # The restarted server kept nothing (no AOF): only the post after recovery is there.
        assert await check.xlen(Keys(namespace).inbound()) == 1
        await check.aclose()
    finally:
        server.stop()


# --- concurrency, metrics, fixtures ------------------------------------------------------------


async def test_concurrent_posts_are_each_stored_once(
    make_client: ClientFactory, redis: aioredis.Redis, namespace: str
) -> None:
    client = await make_client()
    bodies = [
        b'{"object":"page","entry":[{"id":"1","time":%d,"messaging":[]}]}' % n for n in range(300)
    ]
    responses = await asyncio.gather(
        *(client.post("/webhook", data=b, headers=headers(b)) for b in bodies)
    )
    assert [r.status for r in responses] == [200] * len(bodies)
    assert sorted(f[b"body"] for f in await stored(redis, namespace)) == sorted(bodies)


async def test_metrics_exposed(make_client: ClientFactory) -> None:
    client = await make_client()
    await client.post("/webhook", data=BODY, headers=headers(BODY))
    await client.post("/webhook", data=b"x", headers=headers(b"x"))
    text = await scrape(client)
    assert 'lull_ingest_requests_total{route="/webhook",status="200"} 1.0' in text
    assert 'lull_ingest_requests_total{route="/webhook",status="400"} 1.0' in text
    assert 'lull_ingest_rejected_total{reason="not_json"} 1.0' in text
    assert "lull_ingest_store_seconds_count 1.0" in text
    assert "lull_ingest_body_bytes_bucket" in text
    assert "lull_ingest_redis_errors_total 0.0" in text


async def test_unknown_route_is_404(make_client: ClientFactory) -> None:
    client = await make_client()
    assert (await client.get("/admin")).status == 404
    assert (await client.put("/webhook", data=BODY)).status == 405


async def test_metrics_only_on_the_public_port_when_configured(make_client: ClientFactory) -> None:
    assert (await (await make_client()).get("/metrics")).status == 404
    public = await make_client(LULL_INGEST_PUBLIC_METRICS="1")
    response = await public.get("/metrics")
    assert response.status == 200
    assert "lull_ingest_requests_total" in await response.text()


FIXTURE_FILES = sorted(FIXTURES.glob("*/*.json"))


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
async def test_every_documented_payload_is_stored_verbatim(
    make_client: ClientFactory, redis: aioredis.Redis, namespace: str, path: Path
) -> None:
    body = path.read_bytes()
    client = await make_client()
    response = await client.post("/webhook", data=body, headers=headers(body))
    assert response.status == 200
    [fields] = await stored(redis, namespace)
    assert fields[b"body"] == body
