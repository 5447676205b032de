"""`lull stats` over state built by the real processor: streams, groups, windows, dead letters."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from lull.cli import main
from lull.common.delivery import DeliveryFailure
from lull.common.store.keys import PROCESSOR_GROUP, SENDER_GROUP, Keys
from lull.common.store.sent import SentMessage
from lull.common.store.streams import ensure_group
from lull.dev.embedded_redis import free_port
from lull.ops.simulate_payloads import SimMessage, build_body
from lull.ops.stats import collect, redis_now_ms
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings

ACCOUNT = "106000000000001"
SHARDS = 2


@pytest.fixture
def stats_env(base_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The test namespace with two shards, in os.environ for the in-process CLI."""
    env = {**base_env, "LULL_SHARDS": str(SHARDS)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def stats_cli(*words: str) -> int:
    """`lull stats` in-process (run in a thread: it has an event loop of its own)."""
    return main(["stats", *words])


async def stats_json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """Run `lull stats --json` and return its object."""
    capsys.readouterr()  # drop what the processor logged
    assert await asyncio.to_thread(stats_cli, "--json") == 0
    lines = capsys.readouterr().out.splitlines()
    parsed: dict[str, Any] = json.loads(lines[-1])
    return parsed


async def ingest(redis: aioredis.Redis, keys: Keys, body: bytes) -> None:
    """What ingest stores for one accepted POST."""
    fields = {"body": body, "received_at": int(time.time() * 1000), "sig": "ok"}
    await redis.xadd(keys.inbound(), fields)  # type: ignore[arg-type]


def users_per_shard(keys: Keys, count: int) -> dict[int, list[str]]:
    """count user ids for each shard."""
    found: dict[int, list[str]] = {shard: [] for shard in range(keys.shards)}
    for n in range(1000):
        user = f"70000{n:04d}"
        shard = keys.shard_of(f"messenger:{ACCOUNT}:{user}")
        if len(found[shard]) < count:
            found[shard].append(user)
    assert all(len(users) == count for users in found.values())
    return found


async def body_for(redis: aioredis.Redis, user: str, mid: str) -> bytes:
    """A Messenger text webhook from user, timed by the Redis clock."""
    now = await redis_now_ms(redis)
    return build_body(SimMessage("messenger", ACCOUNT, user, mid, f"text of {mid}", now))


async def until_redis_clock_passes(redis: aioredis.Redis, ms: int) -> None:
    """Wait (bounded) until the Redis clock is past ms, so an age measured now is > 0."""
    deadline = time.monotonic() + 2
    while await redis_now_ms(redis) <= ms:
        assert time.monotonic() < deadline


async def build_state(redis: aioredis.Redis, env: dict[str, str]) -> tuple[Keys, Processor]:
    """Open windows on both shards, one batch out, one dead letter, lag, pending."""
    window = {"LULL_WINDOW_MS": "600000", "LULL_MAX_WAIT_MS": "900000"}
    processor = Processor(redis, ProcessorSettings.from_env({**env, **window}), consumer_name="p1")
    keys = processor.keys
    users = users_per_shard(keys, 2)
    for shard_users in users.values():
        for user in shard_users:
            for n in range(2):
                await ingest(redis, keys, await body_for(redis, user, f"m-{user}-{n}"))
    await ingest(redis, keys, b"not json at all")  # a poison entry: a dead letter
    await processor.start()
    await processor.consumer.run_until_idle()
    # One window of shard 1 is closed now: a batch on that shard's outbound stream.
    closed = f"messenger:{ACCOUNT}:{users[1][0]}"
    assert await processor.store.flush(closed)
    result = await processor.store.close_due(1, 10)
    assert [c.conversation for c in result.closed] == [closed]
    for stream in keys.all_outbound():
        await ensure_group(redis, stream, SENDER_GROUP)
    # Three more raw entries: the processor group has not read them (lag) ...
    for n in range(3):
        await ingest(redis, keys, await body_for(redis, users[0][0], f"late-{n}"))
    # ... and a consumer that reads one and never acknowledges it (pending).
    await redis.xreadgroup(PROCESSOR_GROUP, "stuck", {keys.inbound(): ">"}, count=1)
    return keys, processor


async def test_json_fields_over_real_state(
    redis: aioredis.Redis,
    stats_env: dict[str, str],
    namespace: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    keys, _processor = await build_state(redis, stats_env)
    opened = await collect(redis, keys)
    assert opened.windows.oldest_age_ms is not None
    await until_redis_clock_passes(redis, opened.redis_time_ms - opened.windows.oldest_age_ms)
    out = await stats_json(capsys)

    assert out["namespace"] == namespace and out["shards"] == SHARDS
    assert out["redis_time_ms"] > 0
    assert out["inbound"] == {
        "stream": keys.inbound(), "length": 12, "group": PROCESSOR_GROUP,
        "group_exists": True, "lag": 2, "pending": 1,
    }  # fmt: skip
    assert out["outbound"]["length"] == 1 and out["outbound"]["lag"] == 1
    assert out["outbound"]["pending"] == 0
    assert [s["length"] for s in out["outbound"]["per_shard"]] == [0, 1]
    assert [s["group_exists"] for s in out["outbound"]["per_shard"]] == [True, True]
    assert {(g["stream"], g["group"]) for g in out["groups"]} == {
        (keys.inbound(), PROCESSOR_GROUP),
        *((stream, SENDER_GROUP) for stream in keys.all_outbound()),
    }
    processor_group = next(g for g in out["groups"] if g["group"] == PROCESSOR_GROUP)
    assert processor_group["consumers"] == 2 and processor_group["pending"] == 1

    consumers = {c["name"]: c for c in out["consumers"]}
    assert set(consumers) == {"p1", "stuck"}
    assert consumers["stuck"]["pending"] == 1 and consumers["p1"]["pending"] == 0
    assert all(c["idle_ms"] >= 0 and c["group"] == PROCESSOR_GROUP for c in consumers.values())

    windows = out["windows"]
    assert windows["open"] == 3 and windows["open_per_shard"] == [2, 1]
    assert windows["oldest_age_ms"] > 0 and windows["approximate"] is False
    assert windows["sampled"] == 3
    assert windows["oldest_conversation"].startswith(f"messenger:{ACCOUNT}:")
    assert out["dead_letters"] == 1


async def test_ages_and_overdue_against_a_given_clock(
    redis: aioredis.Redis, stats_env: dict[str, str]
) -> None:
    keys, processor = await build_state(redis, stats_env)
    now = await redis_now_ms(redis)
    stats = await collect(redis, keys, now_ms=now + 5000)
    assert stats.redis_time_ms == now + 5000
    assert stats.windows.oldest_age_ms is not None and stats.windows.oldest_age_ms >= 5000
    # Deadlines are ten minutes out: nothing is overdue.
    assert stats.windows.most_overdue_ms is None
    # A window made due now and not closed (no closer runs) is overdue a moment later.
    late = f"messenger:{ACCOUNT}:{users_per_shard(keys, 1)[0][0]}"
    assert await processor.store.flush(late)
    stats = await collect(redis, keys, now_ms=await redis_now_ms(redis) + 3000)
    assert stats.windows.most_overdue_conversation == late
    assert stats.windows.most_overdue_ms is not None and stats.windows.most_overdue_ms >= 3000


async def test_sampling_is_bounded_and_marked_approximate(
    redis: aioredis.Redis, stats_env: dict[str, str]
) -> None:
    keys, _processor = await build_state(redis, stats_env)
    full = await collect(redis, keys)
    sampled = await collect(redis, keys, max_sampled_windows=2)
    assert sampled.windows.approximate and sampled.windows.sampled == 2
    assert sampled.windows.open_per_shard == full.windows.open_per_shard == (2, 1)
    assert sampled.windows.oldest_age_ms is not None


async def test_an_empty_namespace_gives_zeros(
    redis: aioredis.Redis, stats_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = await stats_json(capsys)
    assert out["inbound"]["length"] == 0 and out["inbound"]["lag"] == 0
    assert out["inbound"]["pending"] == 0 and out["inbound"]["group_exists"] is False
    assert out["outbound"] == {
        "length": 0, "lag": 0, "pending": 0,
        "per_shard": [
            {"shard": n, "stream": stream, "length": 0, "group": SENDER_GROUP,
             "group_exists": False, "lag": 0, "pending": 0}
            for n, stream in enumerate(Keys(stats_env["LULL_NAMESPACE"], SHARDS).all_outbound())
        ],
    }  # fmt: skip
    assert out["groups"] == [] and out["consumers"] == [] and out["dead_letters"] == 0
    assert out["delivery_failures"] == []
    assert out["windows"] == {
        "open": 0, "open_per_shard": [0, 0], "oldest_age_ms": None, "oldest_conversation": None,
        "sampled": 0, "approximate": False, "most_overdue_ms": None,
        "most_overdue_conversation": None,
    }  # fmt: skip
    # Only reads: an empty namespace stays empty.
    assert [key async for key in redis.scan_iter(match=f"{stats_env['LULL_NAMESPACE']}:*")] == []


async def test_the_screen_shows_every_part(
    redis: aioredis.Redis, stats_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    await build_state(redis, stats_env)
    capsys.readouterr()
    assert await asyncio.to_thread(stats_cli) == 0
    screen = capsys.readouterr().out
    for part in ("streams", "open windows", "consumers", "dead letters", "stuck", "oldest"):
        assert part in screen, part


async def test_recent_delivery_failures_over_every_shard_newest_first(
    redis: aioredis.Redis, stats_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    processor = Processor(redis, ProcessorSettings.from_env(stats_env))
    keys = processor.keys
    conversation = f"whatsapp:106540352242922:{users_per_shard(keys, 1)[1][0]}"
    await redis.set(keys.sent_message("wamid.a"), SentMessage(conversation, 7).encode())
    await processor.start()
    # 12 failures, newest last; only wamid.a was sent by lull (its conversation is on shard 1).
    account = "106540352242922"
    failures = [
        DeliveryFailure("whatsapp", account, f"wamid.{n}", 1_000 * n, None, 131026, "undelivered")
        for n in range(11)
    ] + [DeliveryFailure("whatsapp", account, "wamid.a", 99_000, "1", 131049, "x")]
    await processor.failures.record(failures)
    out = await stats_json(capsys)
    shown = out["delivery_failures"]
    assert len(shown) == 10
    assert shown[0] == {
        "at_ms": 99_000, "platform": "whatsapp", "account_id": "106540352242922",
        "message_id": "wamid.a", "code": 131049, "title": "x", "details": "",
        "conversation": conversation, "seq": 7,
    }  # fmt: skip
    assert [f["message_id"] for f in shown[1:]] == [f"wamid.{n}" for n in range(10, 1, -1)]
    assert all(f["conversation"] is None for f in shown[1:])
    # Both shards hold some: the unmatched ones live in their message id's shard.
    lengths = [await redis.llen(keys.delivery_failures(shard)) for shard in range(SHARDS)]
    assert all(lengths) and sum(lengths) == 12
    assert await asyncio.to_thread(stats_cli) == 0
    screen = capsys.readouterr().out
    assert "recent delivery failures" in screen and conversation in screen
    assert "(unmatched)" in screen


def test_bad_configuration_exits_2(
    stats_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LULL_SHARDS", "0")
    assert stats_cli("--json") == 2
    assert capsys.readouterr().err.startswith("lull stats: bad configuration: LULL_SHARDS")
    monkeypatch.setenv("LULL_SHARDS", "1")
    assert stats_cli("--watch", "0") == 2


def test_unreachable_redis_exits_1(
    stats_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LULL_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    assert stats_cli("--json") == 1
    err = capsys.readouterr().err
    assert err.startswith("lull stats: Redis at redis://127.0.0.1:") and err.count("\n") == 1


@pytest.mark.slow
async def test_watch_refreshes_until_ctrl_c(stats_env: dict[str, str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lull.cli", "stats", "--watch", "0.05", "--json",
        env={**os.environ, **stats_env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 15))
        second = json.loads(await asyncio.wait_for(proc.stdout.readline(), 5))
        assert first["windows"]["open"] == second["windows"]["open"] == 0
        assert second["redis_time_ms"] >= first["redis_time_ms"]
        proc.send_signal(signal.SIGINT)
        _out, err = await asyncio.wait_for(proc.communicate(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
