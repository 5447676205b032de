"""`lull simulate` against the real ingest app: signed, stored, parseable, paced and bounded."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from lull.cli import main
from lull.common.platforms import parse
from lull.common.store.keys import Keys
from lull.dev.embedded_redis import free_port
from lull.ingest.app import create_app
from lull.ingest.settings import IngestSettings
from lull.ops.simulate import SimulateConfig, SimulateError, Summary, is_loopback, simulate
from lull.ops.simulate_payloads import BURSTS, PLATFORMS, SimMessage, build_body
from tests.conftest import FIXTURES

SECRET = "simulate-test-secret"


@pytest.fixture
async def ingest_url(base_env: dict[str, str]) -> AsyncIterator[str]:
    """The webhook URL of a real ingest app on loopback, storing into the test namespace."""
    env = {
        **base_env,
        "LULL_APP_SECRET": SECRET,
        "LULL_VERIFY_TOKEN": "simulate-test-token",
        "LULL_INGEST_METRICS_PORT": "0",
    }
    server = TestServer(create_app(IngestSettings.from_env(env)), host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/webhook"))
    await server.close()


def config(url: str, **overrides: Any) -> SimulateConfig:
    """A fast run: no gaps, so tests never wait for simulated typing."""
    values: dict[str, Any] = {
        "url": url,
        "app_secret": SECRET,
        "users": 3,
        "messages_per_user": 2,
        "gap_ms": 0,
        "seed": 7,
    }
    return SimulateConfig(**{**values, **overrides})


async def stored_bodies(redis: aioredis.Redis, namespace: str) -> list[bytes]:
    """Every raw body ingest stored, in order."""
    entries = cast(
        list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(Keys(namespace).inbound())
    )
    return [fields[b"body"] for _id, fields in entries]


def shape(value: Any) -> Any:
    """The key structure of a JSON value: what Meta's documented shape fixes."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


@pytest.mark.parametrize("platform", ["messenger", "instagram", "whatsapp"])
def test_bodies_have_the_documented_shape(platform: str) -> None:
    fixture = orjson.loads((FIXTURES / platform / "text.json").read_bytes())
    message = SimMessage(platform, "1234", "5678", "mid-1", "hi", 1763800000123)
    body = orjson.loads(build_body(message))
    assert shape(body) == shape(fixture)
    [event] = parse(build_body(message)).events
    assert (event.platform, event.account_id, event.user_id) == (platform, "1234", "5678")
    assert (event.mid, event.text, event.kind) == ("mid-1", "hi", "text")
    # WhatsApp carries seconds; Messenger and Instagram milliseconds.
    assert event.event_time_ms == (1763800000000 if platform == "whatsapp" else 1763800000123)


@pytest.mark.parametrize("platform", ["messenger", "instagram", "whatsapp"])
async def test_every_post_is_stored_and_parses_back(
    platform: str, ingest_url: str, redis: aioredis.Redis, namespace: str
) -> None:
    summary = await simulate(config(ingest_url, platform=platform))
    assert summary.posts == summary.planned == 6
    assert summary.statuses == {200: 6} and summary.all_ok
    assert summary.errors == 0
    assert summary.p50_ms is not None and summary.p99_ms is not None
    assert await redis.xlen(Keys(namespace).inbound()) == 6

    expected = {
        (r.mids[0], r.user_id, r.account_id, r.texts[0], r.conversation) for r in summary.records
    }
    found = set()
    for body in await stored_bodies(redis, namespace):
        [event] = parse(body).events
        found.add((event.mid, event.user_id, event.account_id, event.text, event.conversation))
    assert found == expected
    assert len({r.user_id for r in summary.records}) == 3
    assert all(summary.run_id in r.mids[0] for r in summary.records)


async def test_runs_never_reuse_mids(ingest_url: str) -> None:
    first, second = await simulate(config(ingest_url)), await simulate(config(ingest_url))
    assert first.run_id != second.run_id
    first_mids = {m for r in first.records for m in r.mids}
    assert len(first_mids) == 6
    assert first_mids.isdisjoint(m for r in second.records for m in r.mids)


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_runs_are_new_users_unless_named(platform: str, ingest_url: str) -> None:
    # Issue 21: the same users every run kept their history and seq for days, so a make
    # run's bot never saw a first turn again. Seeded runs too: the seed fixes texts, not who.
    first = await simulate(config(ingest_url, platform=platform))
    second = await simulate(config(ingest_url, platform=platform))
    first_users = {r.user_id for r in first.records}
    second_users = {r.user_id for r in second.records}
    assert len(first_users) == len(second_users) == 3
    assert first_users.isdisjoint(second_users)
    for user in first_users | second_users:
        assert user.isdigit() and len(user) == 13, user  # a PSID, IGSID or wa_id's shape
    named = [
        await simulate(config(ingest_url, platform=platform, user_prefix="5550")) for _ in range(2)
    ]
    assert {r.user_id for r in named[0].records} == {r.user_id for r in named[1].records} == {
        "5550000001", "5550000002", "5550000003",
    }  # fmt: skip


async def test_a_wrong_secret_is_recorded_as_401(
    ingest_url: str, redis: aioredis.Redis, namespace: str
) -> None:
    summary = await simulate(config(ingest_url, app_secret="not-the-secret"))
    assert summary.statuses == {401: 6}
    assert not summary.all_ok
    assert {r.status for r in summary.records} == {401}
    assert await redis.xlen(Keys(namespace).inbound()) == 0


async def test_a_refused_connection_is_recorded_not_raised() -> None:
    url = f"http://127.0.0.1:{free_port()}/webhook"
    summary = await simulate(config(url, timeout_s=2))
    assert summary.posts == 6 and summary.errors == 6 and summary.statuses == {}
    assert summary.p50_ms is None
    assert all(r.status is None and r.error for r in summary.records)


async def test_rate_spaces_posts_evenly(ingest_url: str) -> None:
    summary = await simulate(config(ingest_url, users=4, messages_per_user=5, rate_per_s=100))
    assert summary.statuses == {200: 20}
    # 20 POSTs 10 ms apart: the last starts 190 ms after the first (a lower bound only).
    assert summary.elapsed_s >= 0.18
    sent = sorted(r.sent_at_ms for r in summary.records)
    assert sent[-1] - sent[0] >= 180


async def test_gaps_space_one_users_messages(ingest_url: str) -> None:
    summary = await simulate(config(ingest_url, users=1, messages_per_user=3, gap_ms=40))
    sent = [r.sent_at_ms for r in summary.records]
    # Each gap is 40 ms times a jitter factor of at least 0.5.
    assert all(b - a >= 19 for a, b in itertools.pairwise(sent))
    # One user types the start of one realistic burst, in order.
    texts = tuple(r.texts[0] for r in summary.records)
    assert any(burst[:3] == texts for burst in BURSTS)


async def test_duration_stops_a_long_run(ingest_url: str) -> None:
    run = config(ingest_url, users=2, messages_per_user=10_000, gap_ms=20, duration_s=0.3)
    summary = await simulate(run)
    assert 0 < summary.posts < run.planned
    assert summary.elapsed_s < 3
    assert summary.all_ok


async def test_stop_ends_the_run_early(ingest_url: str) -> None:
    stop = asyncio.Event()
    seen: list[int | None] = []

    def on_post(record: Any) -> None:
        seen.append(record.status)
        if len(seen) == 3:
            stop.set()

    summary = await simulate(config(ingest_url, users=1, messages_per_user=1000), on_post, stop)
    assert summary.posts == len(seen) == 3


@pytest.mark.parametrize(
    "url",
    ["http://192.0.2.10/webhook", "https://example.com/webhook", "http://10.1.2.3:8080/webhook"],
)
def test_a_remote_url_is_refused_unless_allowed(url: str) -> None:
    with pytest.raises(SimulateError, match="not loopback"):
        config(url)
    assert config(url, allow_remote=True).url == url


def test_loopback_hosts() -> None:
    for host in ("127.0.0.1", "127.8.9.10", "::1", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    unspecified = "0.0.0.0"  # noqa: S104  (a string under test; nothing binds)
    for host in ("10.0.0.1", unspecified, "example.com", "localhost.example.com", "::"):
        assert not is_loopback(host), host
    with pytest.raises(SimulateError, match="http"):
        config("ftp://127.0.0.1/webhook")


def simulate_cli(*words: str) -> int:
    """`lull simulate` in-process (in a thread when the test's loop runs the server)."""
    return main(["simulate", *words])


async def test_cli_json_and_record(
    ingest_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No --app-secret: the first of LULL_APP_SECRET's rotating secrets is used.
    monkeypatch.setenv("LULL_APP_SECRET", f"{SECRET},old-secret")
    record = tmp_path / "posts.jsonl"
    words = ["--url", ingest_url, "--platform", "whatsapp", "--users", "2"]
    words += ["--messages-per-user", "2", "--gap-ms", "0", "--json", "--record", str(record)]
    assert await asyncio.to_thread(simulate_cli, *words) == 0
    # The in-process ingest logs to stdout too: the summary is the last line.
    out = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert out["posts"] == 4 and out["statuses"] == {"200": 4} and out["all_ok"] is True
    assert out["errors"] == 0 and out["p50_ms"] > 0 and out["p99_ms"] >= out["p50_ms"]
    assert out["platform"] == "whatsapp" and isinstance(out["elapsed_s"], float)
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(lines) == 4
    assert set(lines[0]) == {
        "user_id", "account_id", "conversation", "mids", "texts", "status", "error",
        "latency_ms", "sent_at_ms",
    }  # fmt: skip
    assert {line["status"] for line in lines} == {200}
    assert lines[0]["conversation"].startswith("whatsapp:")


async def test_cli_table_and_exit_1_on_refused_posts(
    ingest_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    words = ["--url", ingest_url, "--app-secret", "wrong", "--users", "1", "--gap-ms", "0"]
    assert await asyncio.to_thread(simulate_cli, *words) == 1
    out = capsys.readouterr().out
    assert "POSTs sent" in out and "401: 3" in out and "latency p99" in out


@pytest.mark.parametrize(
    ("words", "complaint"),
    [
        (["--users", "0"], "users must be at least 1"),
        (["--rate", "0"], "rate must be > 0"),
        (["--rate", "-5"], "rate must be > 0"),
        (["--platform", "telegram"], "platform must be one of"),
        (["--url", "http://203.0.113.5/webhook"], "not loopback"),
        (["--messages-per-user", "0"], "messages per user"),
        (["--duration", "0"], "duration must be > 0"),
    ],
)
def test_cli_bad_arguments_exit_2_with_one_line(
    words: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert simulate_cli(*words) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and complaint in err
    assert err.startswith("lull simulate: ")


def test_summary_all_ok_needs_a_post() -> None:
    empty = Summary("r", 3, 0, {}, 0, {}, None, None, 0.0, [])
    assert not empty.all_ok
