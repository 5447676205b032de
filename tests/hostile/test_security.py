"""Ingest's attack surface: only the documented endpoints, signatures required by default,
metrics off the public port unless asked for."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from lull.common import signing as signature
from lull.common.env import ConfigError
from lull.common.signing import sign
from lull.common.store.keys import Keys
from lull.dev.embedded_redis import free_port
from lull.ingest.app import create_app, metrics_app, serve_metrics_port
from lull.ingest.settings import IngestSettings
from lull.sender.settings import SenderSettings
from tests.hostile.bodies import text_body

SECRET = "security-app-secret"
TOKEN = "security-verify-token"
BODY = text_body("messenger", "u1", "m1", "hi", 1763800000000)

HEALTH = {("GET", "/healthz"), ("HEAD", "/healthz"), ("GET", "/readyz"), ("HEAD", "/readyz")}
WEBHOOK = {("GET", "/webhook"), ("HEAD", "/webhook"), ("POST", "/webhook")}
METRICS = {("GET", "/metrics"), ("HEAD", "/metrics")}


def routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every route app serves."""
    return {
        (route.method, route.resource.canonical) for route in app.router.routes() if route.resource
    }


def settings(base_env: dict[str, str], **overrides: str) -> IngestSettings:
    env = {**base_env, "LULL_APP_SECRET": SECRET, "LULL_VERIFY_TOKEN": TOKEN, **overrides}
    return IngestSettings.from_env(env)


def test_public_port_serves_only_the_webhook_and_health(base_env: dict[str, str]) -> None:
    assert routes(create_app(settings(base_env))) == WEBHOOK | HEALTH
    public = create_app(settings(base_env, LULL_INGEST_PUBLIC_METRICS="1"))
    assert routes(public) == WEBHOOK | HEALTH | METRICS


async def test_metrics_port_serves_only_metrics_and_health(base_env: dict[str, str]) -> None:
    port = free_port()
    app = create_app(settings(base_env, LULL_INGEST_METRICS_PORT=str(port)))
    serve_metrics_port(app)
    async with TestClient(TestServer(app)) as public, aiohttp.ClientSession() as session:
        assert routes(metrics_app(public.app)) == METRICS | HEALTH
        await public.post(
            "/webhook", data=BODY, headers={"X-Hub-Signature-256": sign(SECRET, BODY)}
        )
        base = f"http://127.0.0.1:{port}"
        async with session.get(f"{base}/metrics") as response:
            assert response.status == 200
            assert (
                'lull_ingest_requests_total{route="/webhook",status="200"} 1.0'
                in await response.text()
            )
        for path, status in (("/healthz", 200), ("/readyz", 200), ("/webhook", 404)):
            async with session.get(base + path) as response:
                assert response.status == status, path
        assert (await public.get("/metrics")).status == 404
    # Stopped with the app: nothing listens there any more.
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics"):
            pass


@pytest.mark.parametrize(
    "path",
    ["/", "/admin", "/metrics", "/debug", "/_sent", "/_script", "/webhook/", "/WEBHOOK",
     "/webhook/../metrics", "/%2e%2e/etc/passwd", "/healthz/x", "/.env", "/server-status"],
)  # fmt: skip
async def test_unknown_paths_are_404(base_env: dict[str, str], path: str) -> None:
    async with TestClient(TestServer(create_app(settings(base_env)))) as client:
        for method in ("GET", "POST"):
            response = await client.request(method, path, data=BODY)
            assert response.status == 404, (method, path)


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/webhook"), ("DELETE", "/webhook"), ("PATCH", "/webhook"), ("OPTIONS", "/webhook"),
     ("POST", "/healthz"), ("POST", "/readyz"), ("DELETE", "/readyz"), ("TRACE", "/webhook")],
)  # fmt: skip
async def test_wrong_methods_are_405(base_env: dict[str, str], method: str, path: str) -> None:
    async with TestClient(TestServer(create_app(settings(base_env)))) as client:
        response = await client.request(method, path, data=BODY)
        assert response.status == 405


@pytest.mark.parametrize("secret", [None, "", "   ", ",", " , ,"])
@pytest.mark.parametrize("skip", [None, "0", "false", "no", "off"])
def test_a_secret_is_required_unless_insecure_mode_is_explicit(
    secret: str | None, skip: str | None
) -> None:
    env = {"LULL_VERIFY_TOKEN": TOKEN}
    if secret is not None:
        env["LULL_APP_SECRET"] = secret
    if skip is not None:
        env["LULL_INSECURE_SKIP_SIGNATURE"] = skip
    with pytest.raises(ConfigError, match="LULL_APP_SECRET"):
        IngestSettings.from_env(env)
    insecure = IngestSettings.from_env({**env, "LULL_INSECURE_SKIP_SIGNATURE": "1"})
    assert insecure.insecure_skip_signature


def test_defaults_are_the_safe_ones() -> None:
    defaults = IngestSettings.from_env({"LULL_APP_SECRET": SECRET, "LULL_VERIFY_TOKEN": TOKEN})
    assert defaults.insecure_skip_signature is False
    assert defaults.public_metrics is False
    assert defaults.host == defaults.metrics_host == "127.0.0.1"
    assert SECRET not in repr(defaults)
    assert TOKEN not in repr(defaults)


def test_sender_settings_never_show_secrets() -> None:
    env = {"LULL_HANDLER": "echo", "LULL_HANDLER_SECRET": "handler-secret-value"}
    sender = SenderSettings.from_env({**env, "LULL_ACCESS_TOKENS": '{"p1": "page-token-value"}'})
    assert "handler-secret-value" not in repr(sender)
    assert "page-token-value" not in repr(sender)


async def test_unsigned_or_missigned_posts_are_401_and_not_stored(
    base_env: dict[str, str], redis: aioredis.Redis, namespace: str
) -> None:
    async with TestClient(TestServer(create_app(settings(base_env)))) as client:
        for headers in (
            {},
            {"X-Hub-Signature-256": ""},
            {"X-Hub-Signature-256": sign("wrong", BODY)},
            {"X-Hub-Signature-256": sign(SECRET, BODY + b"\n")},
            {"X-Hub-Signature-256": "sha1=" + sign(SECRET, BODY)[7:]},
            {"X-Hub-Signature": sign(SECRET, BODY)},
        ):
            response = await client.post("/webhook", data=BODY, headers=headers)
            assert response.status == 401, headers
        assert await redis.xlen(Keys(namespace).inbound()) == 0
        good = await client.post(
            "/webhook", data=BODY, headers={"X-Hub-Signature-256": sign(SECRET, BODY)}
        )
        assert good.status == 200


@pytest.mark.parametrize(
    "header",
    ["sha256=" + "\udcff" * 64, "sha256=" + "é" * 64, "sha256=" + "0" * 63 + "\x00", "\udcff" * 71,
     "SHA256=" + "0" * 64, "sha256=" + "0" * 65, "sha256 =" + "0" * 63],
)  # fmt: skip
def test_signature_check_refuses_odd_headers_without_raising(header: str) -> None:
    assert signature.check(header, BODY, (SECRET,)) in ("malformed", "mismatch")


@pytest.mark.slow
def test_metrics_port_in_use_stops_ingest_with_one_line(base_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {**os.environ, **base_env, "LULL_APP_SECRET": SECRET, "LULL_VERIFY_TOKEN": TOKEN,
               "LULL_INGEST_PORT": str(free_port()),
               "LULL_INGEST_METRICS_PORT": str(taken.getsockname()[1])}  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "lull.ingest"],
            env=env,
            capture_output=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 1
    lines = done.stderr.decode().strip().splitlines()
    assert "ingest cannot listen" in lines[-1]
    assert "Traceback" not in done.stderr.decode()
