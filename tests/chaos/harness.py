"""The chaos and fault tests' harness: bot, stack and observer up; drain; gather evidence.

async with Harness(tmp_path, StackConfig()) as h:
    load = await run_load(LoadPlan(seconds=10), h.stack.webhook_url, seed)  # + faults
    verdict = await h.settle_and_judge(load, sender_kills=[], timeout_s=30)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from lull.common.redis_conn import connect
from lull.common.store.keys import PROCESSOR_GROUP, SENDER_GROUP
from lull.common.store.streams import text
from tests.chaos.bot import RecordingBot, batch_of_reply
from tests.chaos.drain import Backlog, wait_drained
from tests.chaos.graph_control import sent_records
from tests.chaos.load import LoadResult
from tests.chaos.observe import Observer
from tests.chaos.stack import Stack, StackConfig
from tests.chaos.verdict import DeadLetter, Evidence, Send, Verdict, judge

# After Redis comes back, consumers and closers may still sleep out their backoff (capped
# at 10 s); the verdict does not judge windows until they could have resumed.
RECOVERY_MS = 12_000
# What a loaded 2-core machine adds to a window's life beyond the settings.
SLACK_MS = 2000
OBSERVER_STOP_S = 5.0


class Harness:
    """Owns the bot, the stack and the observer of one test."""

    def __init__(self, workdir: Path, config: StackConfig) -> None:
        self.workdir = workdir
        self.config = config
        self.bot = RecordingBot()
        self._stack: Stack | None = None
        self._observer: Observer | None = None
        self._watching: asyncio.Task[None] | None = None

    @property
    def stack(self) -> Stack:
        """The running stack."""
        assert self._stack is not None, "Harness not entered"
        return self._stack

    @property
    def observer(self) -> Observer:
        """The observer of emitted batches."""
        assert self._observer is not None, "Harness not entered"
        return self._observer

    async def __aenter__(self) -> Harness:
        await self.bot.start()
        self._stack = Stack(self.workdir, self.config, self.bot.url)
        try:
            url = self._stack.start_redis()
            self._observer = Observer(url, self._stack.keys)
            # Before any batch exists: the senders' trim must keep entries for the observer.
            await self._observer.attach()
            self._watching = asyncio.create_task(self._observer.run())
            await self._stack.start()
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        if self._observer is not None:
            await self._observer.stop()
            if self._watching is not None:
                await asyncio.wait_for(self._watching, OBSERVER_STOP_S)
            await self._observer.close()
        if self._stack is not None:
            await asyncio.to_thread(self._stack.stop)
        await self.bot.stop()

    async def settle(self, timeout_s: float) -> Backlog:
        """Heal the stack (thaw, restart), then wait until nothing is left to do."""
        stack = self.stack
        stack.heal()
        client = connect(stack.redis.url, timeout_s=5)
        try:
            left = await wait_drained(client, stack.keys, timeout_s)
        finally:
            await client.aclose()
        if not left.idle:
            raise AssertionError(f"not drained in {timeout_s} s: {left}\n{stack.log_tails()}")
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not await self.observer.caught_up():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("the observer did not catch up")
            await asyncio.sleep(0.1)  # polling our own reader task, bounded above
        return left

    async def evidence(
        self,
        load: LoadResult,
        sender_kills: Sequence[tuple[int, int]],
        humans: frozenset[str] = frozenset(),
        api_accepted: frozenset[str] = frozenset(),
    ) -> Evidence:
        """What the fakes, the observer and the dead-letter stream recorded; humans: the
        conversations a human wrote in."""
        stack, config = self.stack, self.config
        return Evidence(
            accepted=load.accepted,
            posted=load.posted,
            emitted=list(self.observer.emitted.values()),
            receipts=list(self.bot.receipts),
            sends=await self._sends(),
            dead=await self._dead(),
            sender_kills=list(sender_kills),
            outages_ms=[(int(d * 1000), int(u * 1000)) for d, u in stack.redis_outages],
            max_open_ms=config.max_wait_ms + config.claim_idle_ms + config.claim_interval_ms
            + SLACK_MS,
            recovery_ms=RECOVERY_MS,
            finished=await self._finished(),
            human_conversations=humans,
            api_accepted=api_accepted,
        )  # fmt: skip

    async def settle_and_judge(
        self,
        load: LoadResult,
        sender_kills: Sequence[tuple[int, int]],
        timeout_s: float,
        humans: frozenset[str] = frozenset(),
        api_accepted: frozenset[str] = frozenset(),
    ) -> Verdict:
        """Drain, then check the invariant; also fails on processes that crashed."""
        await self.settle(timeout_s)
        verdict = judge(await self.evidence(load, sender_kills, humans, api_accepted))
        crashes = self.stack.crashes()
        if crashes:
            verdict.problems.append(f"processes exited on their own: {crashes}")
        return verdict

    async def _sends(self) -> list[Send]:
        sends = []
        for slot in range(len(self.stack.graphs)):
            for record in await sent_records(self.stack.graph_url(slot)):
                batch_id = batch_of_reply(_reply_text(record["payload"]))
                assert batch_id is not None, f"a reply the bot never gave: {record}"
                sends.append(Send(slot, batch_id, int(record["at_ms"])))
        return sends

    async def _finished(self) -> dict[str, int]:
        """Conversation -> the seq up to which the senders finished its batches: the only
        witness of a batch finished `paused`, which reaches neither the bot nor Graph."""
        client = connect(self.stack.redis.url, timeout_s=5)
        finished: dict[str, int] = {}
        try:
            keys = self.stack.keys
            for shard in range(self.config.shards):
                prefix = keys.conversation_state_prefix(shard)
                async for key in client.scan_iter(match=prefix + "*", count=1000):
                    delivered = await client.hget(key, "delivered")
                    if delivered is not None:
                        finished[text(key)[len(prefix) :]] = int(delivered)
        finally:
            await client.aclose()
        return finished

    async def _dead(self) -> list[DeadLetter]:
        client = connect(self.stack.redis.url, timeout_s=5)
        try:
            rows: Any = await client.xrange(self.stack.keys.dead())
        finally:
            await client.aclose()
        dead = []
        for _id, fields in rows:
            group = text(fields.get(b"_group", b"?"))
            batch_id = None
            if group == SENDER_GROUP and b"batch" in fields:
                batch_id = orjson.loads(fields[b"batch"]).get("batch_id")
            elif group != PROCESSOR_GROUP:
                group = f"unknown:{group}"
            dead.append(DeadLetter(group, batch_id, text(fields.get(b"_reason", b""))))
        return dead


def _reply_text(payload: dict[str, Any]) -> str:
    """The text of a Messenger/Instagram or WhatsApp Send API body."""
    message = payload.get("message")
    if isinstance(message, dict):
        return str(message.get("text", ""))
    body = payload.get("text")
    return str(body.get("body", "")) if isinstance(body, dict) else ""
