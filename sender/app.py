"""The sender assembled: consumer group on every outbound stream, the deliverer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiohttp
import structlog
from prometheus_client import CollectorRegistry

from common.consumer import Consumer, ConsumerConfig, Entry, Outcome
from common.consumer_types import REDIS_FAILURES, default_consumer_name
from common.errors import RetryLater
from common.keys import Keys
from common.redis_conn import RedisClient
from common.startup import until_redis_answers
from sender.deliver import Deliverer
from sender.graph import GraphClient
from sender.handler import Handler, build_handler
from sender.metrics import SenderMetrics
from sender.ratelimit import RateLimiter
from sender.send_state import SendStore
from sender.settings import SenderSettings

GROUP = "sender"
REDIS_RETRY_MS = 500
log = structlog.get_logger("lull.sender")


class _Batches:
    """The consumer's handler: the entries of one read, delivered concurrently."""

    def __init__(self, deliverer: Deliverer, concurrency: int) -> None:
        self._deliverer = deliverer
        self._slots = asyncio.Semaphore(concurrency)

    async def __call__(self, stream: str, entries: list[Entry], /) -> list[Outcome]:
        async def one(entry: Entry) -> Outcome:
            async with self._slots:
                try:
                    return await self._deliverer.deliver(entry)
                except REDIS_FAILURES as exc:
                    # Decided per entry, never for the whole read: the other entries of
                    # this read may have been sent already and must be settled as such.
                    log.warning("batch postponed: redis failed", id=entry.id, error=str(exc))
                    return RetryLater(REDIS_RETRY_MS, f"redis: {type(exc).__name__}")

        # Conversations are independent; a batch of the same conversation that comes too
        # early waits for its predecessor through RetryLater, not by blocking this read.
        results: Sequence[Outcome] = await asyncio.gather(*(one(e) for e in entries))
        return list(results)


class Sender:
    """One sender replica. Build with `await Sender.create(...)`, then run() or drain()."""

    def __init__(
        self,
        *,
        client: RedisClient,
        settings: SenderSettings,
        handler: Handler,
        session: aiohttp.ClientSession,
        registry: CollectorRegistry,
        consumer_name: str | None,
    ) -> None:
        self.registry = registry
        self.metrics = SenderMetrics(registry)
        self.keys = Keys(settings.common.namespace, settings.common.shards)
        self.handler = handler
        self._session = session
        consumer = consumer_name or default_consumer_name()
        # The store checks, before each send, that the entry is still this consumer's.
        self.store = SendStore(client, self.keys, GROUP, consumer)
        self.limiter = RateLimiter(client)
        graph = GraphClient(
            session, settings.graph_base, settings.access_tokens, settings.graph_timeout_ms / 1000
        )
        self.deliverer = Deliverer(
            settings, self.keys, self.store, self.limiter, handler, graph, self.metrics
        )
        group = settings.group
        config = ConsumerConfig(
            streams=self.keys.all_outbound(),
            group=GROUP,
            dead_stream=self.keys.dead(),
            consumer=consumer,
            claim_interval_ms=group.claim_interval_ms,
            claim_idle_ms=group.claim_idle_ms,
            max_deliveries=group.max_deliveries,
        )
        self.consumer = Consumer(
            client,
            config,
            _Batches(self.deliverer, settings.concurrency),
            registry,
            on_dead=self.deliverer.mark_dead,
        )

    @classmethod
    async def create(
        cls,
        client: RedisClient,
        settings: SenderSettings,
        registry: CollectorRegistry | None = None,
        consumer_name: str | None = None,
    ) -> Sender:
        """Open the HTTP session, build the handler and load the scripts."""
        session = aiohttp.ClientSession()
        handler = await build_handler(
            settings.handler,
            secret=settings.handler_secret,
            timeout_ms=settings.handler_timeout_ms,
            session=session,
        )
        sender = cls(
            client=client,
            settings=settings,
            handler=handler,
            session=session,
            registry=registry or CollectorRegistry(),
            consumer_name=consumer_name,
        )

        async def load() -> None:
            await sender.store.load_script()
            await sender.limiter.load()

        await until_redis_answers(load, "load scripts")
        return sender

    async def run(self) -> None:
        """Deliver until request_stop()."""
        await self.consumer.run_forever()

    def request_stop(self) -> None:
        """Stop reading; batches in hand are finished or left pending."""
        self.consumer.request_stop()

    async def drain(self) -> None:
        """Tests: deliver until nothing is readable or held for a retry."""
        await self.consumer.run_until_idle()

    async def close(self) -> None:
        """Close the handler and the HTTP session."""
        await self.handler.close()
        await self.store.close()
        await self._session.close()
