"""The processor assembled: consumer group on the inbound stream, window store, closer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from prometheus_client import CollectorRegistry

from lull.common.accounts_reload import LiveAccounts
from lull.common.consumer import Consumer, ConsumerConfig, default_consumer_name
from lull.common.events import Event
from lull.common.redis_conn import RedisClient
from lull.common.startup import until_redis_answers
from lull.common.store.failures import FailureStore
from lull.common.store.keys import PROCESSOR_GROUP
from lull.common.store.pauses import PauseSettings
from lull.common.store.windows import WindowShape, WindowStore
from lull.processor.arrivals import ArrivalLog
from lull.processor.closer import Closer
from lull.processor.human_turns import HumanTurns
from lull.processor.inbound import InboundApplier
from lull.processor.metrics import ProcessorMetrics
from lull.processor.settings import ProcessorAccount, ProcessorSettings

log = structlog.get_logger("lull.processor")

GROUP = PROCESSOR_GROUP


class Processor:
    """One replica: reads raw webhooks, applies them to windows, closes windows on time."""

    def __init__(
        self,
        client: RedisClient,
        settings: ProcessorSettings,
        registry: CollectorRegistry | None = None,
        consumer_name: str | None = None,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self.metrics = ProcessorMetrics(self.registry)
        self.keys = settings.common.keys()
        self.accounts = None if settings.accounts is None else LiveAccounts(settings.accounts)
        self.store = WindowStore(client, self.keys, settings.window, _shape_of(self.accounts))
        self.closer = Closer(
            self.store, settings.common.shards, settings.window.grace_ms, self.metrics
        )
        group = settings.group
        config = ConsumerConfig(
            # Every part of the inbound stream (LULL_INBOUND_SHARDS), and of the former
            # counts being drained: one XREADGROUP per slot on a cluster (consumer/read.py).
            streams=self.keys.all_inbound(),
            group=GROUP,
            dead_stream=self.keys.dead(),
            claim_interval_ms=group.claim_interval_ms,
            claim_idle_ms=group.claim_idle_ms,
            max_deliveries=group.max_deliveries,
            consumer=consumer_name or default_consumer_name(),
            # The handler keeps its applies in read order (InboundApplier).
            read_ahead=True,
        )
        # Failed statuses are remembered as long as message ids are (Meta's webhook retries).
        self.failures = FailureStore(client, self.keys, settings.window.dedupe_ttl_s)
        self.human_turns = HumanTurns(
            client, self.keys, settings.takeover, self.metrics, pause_of=_pause_of(self.accounts)
        )
        arrivals = ArrivalLog(client, self.keys) if settings.read_on_arrival else None
        handler = InboundApplier(
            self.store,
            self.closer,
            self.metrics,
            self.failures,
            self.human_turns,
            arrivals=arrivals,
            refusal=None if self.accounts is None else _refusal(self.accounts),
        )
        self.consumer = Consumer(client, config, handler, self.registry)
        self._stop = asyncio.Event()
        self._redis_url = settings.common.effective_redis_url

    async def start(self) -> None:
        """Load the scripts (and create the group) before the first read."""
        await self.store.load_scripts()
        await self.failures.load_scripts()
        await self.human_turns.load_scripts()

    async def run(self) -> None:
        """Read and close until request_stop(); open windows stay in Redis."""
        url = self._redis_url
        if not await until_redis_answers(self.start, "load scripts", url, self._stop):
            return
        tasks = [asyncio.create_task(self.closer.run(self._stop), name="closer")]
        if self.accounts is not None:
            tasks.append(asyncio.create_task(self.accounts.watch(self._stop), name="accounts"))
            # Let it take SIGHUP over before the first read: a SIGHUP's default ends a process.
            await asyncio.sleep(0)
        try:
            await self.consumer.run_forever()
        finally:
            self._stop.set()
            await asyncio.gather(*tasks)

    def request_stop(self) -> None:
        """Stop reading and closing; what is in hand is finished first."""
        self._stop.set()
        self.consumer.request_stop()

    async def drain(self, timeout_s: float = 30.0) -> int:
        """Tests: handle every inbound entry, then close windows as they fall due until none
        is open; returns the batches emitted."""
        await self.start()
        await self.consumer.run_until_idle()
        return await self.closer.drain(timeout_s)


def _shape_of(
    accounts: LiveAccounts[ProcessorAccount] | None,
) -> Callable[[Event], WindowShape] | None:
    """An event's window settings: its account's, as the accounts file says now."""
    if accounts is None:
        return None
    return lambda event: accounts.current.of(event.account_id).window


def _pause_of(
    accounts: LiveAccounts[ProcessorAccount] | None,
) -> Callable[[str], PauseSettings] | None:
    """An account's pause times, as the accounts file says now (read when a turn is applied:
    a pause started after a reload follows the new file)."""
    if accounts is None:
        return None
    return lambda account_id: accounts.current.of(account_id).pause


def _refusal(accounts: LiveAccounts[ProcessorAccount]) -> Callable[[str], str | None]:
    """Why an event of an account is refused (LULL_ACCOUNTS_STRICT), as the file says now."""
    # Not accounts.current.refusal: that would keep the accounts of today after a reload.
    return lambda account_id: accounts.current.refusal(account_id)  # noqa: PLW0108
