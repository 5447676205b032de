"""`lull pause`, `lull resume` and `lull conversation`, in-process as an operator runs them,
over state the real processor built."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from lull.cli import main
from lull.common.batch import Batch
from lull.common.conversation import Conversation
from lull.common.store.keys import Keys
from lull.common.store.outcomes import outcome_record
from lull.ops.takeover import parse_duration_ms
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings
from tests.ops.test_stats import ACCOUNT, body_for, ingest

USER = "7001"
CONVERSATION = f"messenger:{ACCOUNT}:{USER}"


@pytest.fixture
def cli_env(base_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The test namespace in os.environ for the in-process CLI; short human pauses."""
    env = {**base_env, "LULL_HUMAN_PAUSE_MS": "600000", "LULL_HUMAN_PAUSE_MAX_MS": "3600000"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


async def lull(capsys: pytest.CaptureFixture[str], *words: str) -> tuple[int, str, str]:
    """Run `lull WORDS` in-process (in a thread: it has an event loop of its own)."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(words))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def lull_json(capsys: pytest.CaptureFixture[str], *words: str) -> dict[str, Any]:
    """The JSON state a takeover command printed."""
    code, out, err = await lull(capsys, *words, "--json")
    assert code == 0, err
    parsed: dict[str, Any] = json.loads(out.splitlines()[-1])
    return parsed


@pytest.mark.parametrize(
    ("text", "ms"),
    [("90s", 90_000), ("30m", 1_800_000), ("2h", 7_200_000), ("1d", 86_400_000), (" 5M ", 300_000)],
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize(
    ("text", "reason"),
    [("90", "expected a number and a unit"), ("1.5h", "expected"), ("2w", "expected"),
     ("-1h", "expected"), ("0s", "longer than 0"), ("31d", "at most 30d"), ("", "expected")],
)  # fmt: skip
def test_bad_durations_say_what_is_accepted(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_duration_ms(text)


def test_conversation_keys() -> None:
    assert Conversation.parse("whatsapp:wa1:16315551234").key == "whatsapp:wa1:16315551234"
    assert Conversation.parse("whatsapp:wa1:US.13491208655302741918").key
    hostile = (
        "messenger:p1:u\x1b[2J",
        "messenger:p1:u 1",
        "messenger:p1:u1\n",
        "messenger:p\x00:u",
    )
    for bad in ("u1", "messenger:p1", "messenger::u1", "telegram:p1:u1", *hostile):
        with pytest.raises(ValueError, match="platform:account_id:user_id"):
            Conversation.parse(bad)
    with pytest.raises(ValueError) as refused:
        Conversation.parse("messenger:p1:" + "u" * 100_000)
    assert len(str(refused.value)) < 300


async def test_pause_for_a_while_then_resume(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    before_ms = int(time.time() * 1000)
    state = await lull_json(capsys, "pause", CONVERSATION, "--for", "2h", "--by", "Ann")
    pause = state["pause"]
    assert state["paused"] is True
    assert (pause["reason"], pause["by"], pause["hold"]) == ("operator", "Ann", False)
    assert 7_190_000 < pause["until_ms"] - before_ms < 7_210_000

    code, out, _ = await lull(capsys, "conversation", CONVERSATION)
    assert code == 0
    assert "paused        yes: operator by Ann, since " in out
    assert "(in 2h)" in out or "(in 1.9h)" in out

    state = await lull_json(capsys, "resume", CONVERSATION)
    assert (state["paused"], state["pause"]) == (False, None)
    code, out, _ = await lull(capsys, "conversation", CONVERSATION)
    assert "paused        no" in out


async def test_pause_without_for_lasts_like_a_human_turn(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    pause = (await lull_json(capsys, "pause", CONVERSATION))["pause"]
    assert 0 < pause["until_ms"] - pause["since_ms"] <= 600_000


async def test_bad_input_exits_2_with_one_clear_line(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        await lull(capsys, "pause", CONVERSATION, "--for", "2 weeks")
    assert exited.value.code == 2
    assert "'2 weeks' is not a duration: expected a number and a unit: 90s" in (
        capsys.readouterr().err
    )
    code, _, err = await lull(capsys, "resume", "u1")
    assert code == 2
    assert err.strip() == (
        "lull resume: 'u1' is not a conversation: expected platform:account_id:user_id, "
        "platform one of messenger, instagram, whatsapp"
    )
    code, _, err = await lull(capsys, "pause", "messenger:p1:u1 OR 1")
    assert code == 2
    assert err.startswith("lull pause: 'messenger:p1:u1 OR 1' is not a conversation: expected")
    assert err.strip().endswith("(user_id: 1 to 128 of A-Z a-z 0-9 . _ -)")
    code, _, err = await lull(capsys, "flush", "--conversation", "messenger:p1:*")
    assert code == 2
    assert err.startswith("lull flush: 'messenger:p1:*' is not a conversation")


async def test_conversation_shows_window_seq_and_last_batches(
    cli_env: dict[str, str], redis: aioredis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    window = {"LULL_WINDOW_MS": "600000", "LULL_MAX_WAIT_MS": "900000"}
    processor = Processor(redis, ProcessorSettings.from_env({**cli_env, **window}))
    keys: Keys = processor.keys
    await processor.start()
    await ingest(redis, keys, await body_for(redis, USER, "m-1"))
    await processor.consumer.run_until_idle()
    assert await processor.store.flush(CONVERSATION)
    closed = await processor.store.close_due(keys.shard_of(CONVERSATION), 10)
    entries: Any = await redis.xrange(keys.outbound(0))
    batch = Batch.decode(entries[0][1][b"batch"])
    assert [c.seq for c in closed.closed] == [batch.seq]
    # The sender finished it (what deliver.py writes), and the user wrote twice more since.
    await redis.hset(keys.conversation_state(CONVERSATION), "delivered", batch.seq)
    # The outcome record the sender's finish script pushes (common/store/lua/deliver_mark.lua).
    await redis.lpush(keys.outcomes(CONVERSATION), outcome_record(batch, "sent", 2))
    for mid in ("m-2", "m-3"):
        await ingest(redis, keys, await body_for(redis, USER, mid))
    await processor.consumer.run_until_idle()

    state = await lull_json(capsys, "conversation", CONVERSATION)
    assert (state["seq"], state["delivered"], state["paused"]) == (batch.seq, batch.seq, False)
    assert state["window"]["messages"] == 2
    assert state["window"]["deadline_ms"] > state["read_at_ms"]
    assert state["last_user_message_from"] == "window"
    assert state["last_user_message_ms"] == state["window"]["last_event_ms"]
    [outcome] = state["outcomes"]
    assert (outcome["seq"], outcome["outcome"], outcome["replies"]) == (batch.seq, "sent", 2)
    assert outcome["last_user_message_ms"] == batch.last_event_time

    code, out, _ = await lull(capsys, "conversation", CONVERSATION)
    assert code == 0
    assert "window        open: 2 message(s)" in out
    seq = state["seq"]
    assert f"seq           {seq} closed, {seq} finished by the sender" in out
    assert "(from the window)" in out
    assert f"last batches  seq{' ' * (len(str(seq)) - 3)} outcome      replies" in out
    assert f"              {seq} sent         2        " in out


async def test_a_conversation_never_seen_says_so(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await lull(capsys, "conversation", "instagram:ig1:nobody")
    # Not found exits 1, as the README says and as lull flush and lull dead show do.
    assert code == 1
    assert "nothing recorded" in out
    assert "user wrote    unknown" in out
    code, out, _ = await lull(capsys, "conversation", "instagram:ig1:nobody", "--json")
    assert code == 1
    assert json.loads(out)["seq"] == 0


async def test_redis_down_exits_1(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LULL_REDIS_URL", "redis://127.0.0.1:1/0")
    code, _, err = await lull(capsys, "pause", CONVERSATION)
    assert code == 1
    assert err.startswith("lull pause: Redis at ")


HOSTILE_BY = "\x1b[2J\x1b]0;owned\x07Ann\r\n\u202eevil\x9b31m" + "x" * 1000


async def test_by_is_stored_printable_and_bounded(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    state = await lull_json(capsys, "pause", CONVERSATION, "--by", HOSTILE_BY)
    by = state["pause"]["by"]
    assert by.startswith("\\x1b[2J\\x1b]0;owned\\x07Ann\\r\\n\\u202eevil\\x9b31m")
    assert len(by) == 200
    code, out, _ = await lull(capsys, "conversation", CONVERSATION)
    assert code == 0
    assert all(ch == "\n" or ch.isprintable() for ch in out)


async def test_conversation_escapes_what_another_writer_stored(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str], redis: aioredis.Redis
) -> None:
    """A `by` or reason written by something else than the takeover commands (another
    version, a bot's handoff reason) reaches the terminal escaped all the same."""
    from lull.common.store.pauses import PauseAction, PauseSettings, PauseStore  # noqa: PLC0415

    store = PauseStore(redis, Keys(cli_env["LULL_NAMESPACE"]), PauseSettings(60_000, 3_600_000))
    await store.apply(CONVERSATION, PauseAction.OPERATOR, reason="bot\x1b[8m", by="\x1b]2;x\x07")
    code, out, _ = await lull(capsys, "conversation", CONVERSATION)
    assert code == 0
    assert "paused        yes: bot\\x1b[8m by \\x1b]2;x\\x07, since " in out
    assert "\x1b" not in out and "\x07" not in out
