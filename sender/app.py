"""The sender assembled: consumer group on every outbound stream, the deliverer."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
from prometheus_client import CollectorRegistry

from lull.common.accounts_reload import LiveAccounts
from lull.common.consumer import Consumer, ConsumerConfig, ConsumerMetrics, default_consumer_name
from lull.common.redis_conn import RedisClient
from lull.common.startup import until_redis_answers
from lull.common.store.deliveries import DeliveryStore
from lull.common.store.keys import PRESENCE_GROUP, SENDER_GROUP, Keys
from lull.common.store.pauses import PauseStore
from lull.common.store.sent import SentMessages
from lull.sender.accounts.bots import AccountBots
from lull.sender.accounts.sends import AccountRoutes, AccountSends
from lull.sender.accounts.settings import AccountSend
from lull.sender.accounts.tokens import AccountTokens
from lull.sender.bot import Bot, build_bot
from lull.sender.concurrent_deliveries import ConcurrentDeliveries
from lull.sender.deliver import Deliverer
from lull.sender.graph.batched_sends import BatchingGraphClient
from lull.sender.graph.client import GraphClient
from lull.sender.handoff import Handoffs
from lull.sender.media import MediaService
from lull.sender.metrics import SenderMetrics
from lull.sender.presence.arrivals import ArrivalReads
from lull.sender.presence.batch import BatchedActions
from lull.sender.presence.calls import Presence
from lull.sender.rates.rate import RateLimiter
from lull.sender.sends.marks import SendMarks
from lull.sender.sends.sent_ids import SentIds
from lull.sender.settings import SenderSettings

GROUP = SENDER_GROUP


class Sender:
    """One sender replica. Build with `await Sender.create(...)`, then run() or drain()."""

    def __init__(
        self,
        *,
        client: RedisClient,
        settings: SenderSettings,
        bot: Bot,
        session: aiohttp.ClientSession,
        registry: CollectorRegistry,
        consumer_name: str | None,
        accounts: LiveAccounts[AccountSend] | None = None,
    ) -> None:
        self.registry = registry
        self.accounts = accounts
        """The accounts file in use (reloaded on SIGHUP or a change); None without one."""
        self.tokens = AccountTokens(settings.access_tokens, accounts)
        """Each account's Graph token: the accounts file's, else LULL_ACCESS_TOKENS'."""
        self._stop = asyncio.Event()
        self.metrics = SenderMetrics(registry)
        self.keys = Keys(settings.common.namespace, settings.common.shards)
        self.bot = bot
        self._session = session
        consumer = consumer_name or default_consumer_name()
        # The store checks, before each send, that the entry is still this consumer's.
        self.store = DeliveryStore(client, self.keys, GROUP, consumer)
        self.limiter = RateLimiter(client)
        sends = AccountSends(settings, accounts)
        # Each account's Graph hosts (the accounts file's, else the environment's).
        routes = AccountRoutes(settings.graph_routes, sends)
        # LULL_SEND_BATCH: the replies of one moment of an account in one Graph batch request
        # (sender/graph/batched_sends.py), each still limited, checked and answered alone.
        client_class = BatchingGraphClient if settings.send_batch else GraphClient
        graph = client_class(session, routes, self.tokens, settings.graph_timeout_ms / 1000)
        self.pauses = PauseStore(client, self.keys, settings.pause)
        handoffs = Handoffs(
            sends.handoff_of, pauses=self.pauses, session=session, metrics=self.metrics,
            routes=routes,
        )  # fmt: skip
        # Presence calls get connections of their own: under load they queue behind each
        # other, never in front of a reply waiting for a pooled connection.
        self._presence_session = aiohttp.ClientSession()
        # An account's Messenger/Instagram presence calls of a moment go in one Graph batch
        # request (sender/presence/batch.py); each is still rate-limited and answered alone.
        presence_graph = BatchedActions(
            GraphClient(
                self._presence_session, routes, self.tokens, settings.graph_timeout_ms / 1000
            ),
            routes,
            window_ms=settings.presence_batch_ms,
        )
        self.media = MediaService.build(
            settings.media, client=client, keys=self.keys, routes=routes,
            graph_version=settings.graph_version, tokens=self.tokens,
            conversation_ttl_s=settings.conversation_ttl_s, registry=registry,
        )  # fmt: skip
        sent = SentMessages(self.keys)
        self.deliverer = Deliverer(
            settings, self.keys, self.store, self.limiter, bot, graph, self.metrics,
            sent_ids=SentIds(sent, settings.sent_ids_ttl_s), handoffs=handoffs,
            marks=SendMarks(sent, settings.graph_timeout_ms, settings.sent_ids_ttl_s),
            presence=Presence(
                settings, self.keys, self.limiter, presence_graph, self.metrics.presence,
                should_show=self.store.not_paused, sends=sends,
            ),
            media=self.media, sends=sends,
        )  # fmt: skip
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
        self.deliveries = ConcurrentDeliveries(self.deliverer.deliver, settings.concurrency)
        # What a stop waits for: a bot call and a send, as the deployment files' grace does.
        self._close_wait_s = (settings.handler_timeout_ms + settings.graph_timeout_ms) / 1000
        consumer_metrics = ConsumerMetrics(registry)
        self.consumer = Consumer(
            client, config, self.deliveries, consumer_metrics, on_dead=self.deliverer.mark_dead
        )
        # LULL_READ_RECEIPTS=arrival: messages marked read as the processor windows them.
        self.arrivals: Consumer | None = None
        if settings.presence.read_receipts == "arrival":
            arrivals = dataclasses.replace(
                config, streams=[self.keys.arrivals()], group=PRESENCE_GROUP
            )
            handler = ArrivalReads(self.deliverer.presence)
            self.arrivals = Consumer(client, arrivals, handler, consumer_metrics)

    @classmethod
    async def create(
        cls,
        client: RedisClient,
        settings: SenderSettings,
        registry: CollectorRegistry | None = None,
        consumer_name: str | None = None,
    ) -> Sender:
        """Open the HTTP session, build the handler and load the scripts (waiting for Redis).
        Nothing is left open when this fails or is cancelled."""
        session = aiohttp.ClientSession()
        try:
            # An HTTP bot opens a session of its own: it traces when a request is sent
            # (presence shows typing only then), a cost the Graph API calls need not carry.
            accounts = None if settings.accounts is None else LiveAccounts(settings.accounts)
            bot = await _bot(settings, accounts)
        except BaseException:
            await session.close()
            raise
        sender = cls(
            client=client,
            settings=settings,
            bot=bot,
            session=session,
            registry=registry or CollectorRegistry(),
            consumer_name=consumer_name,
            accounts=accounts,
        )

        async def load() -> None:
            await sender.store.load_scripts()
            await sender.limiter.load_scripts()
            await sender.pauses.load_scripts()

        try:
            await until_redis_answers(load, "load scripts", settings.common.effective_redis_url)
        except BaseException:
            await sender.close()
            raise
        return sender

    async def run(self) -> None:
        """Deliver until request_stop()."""
        runs = []
        if self.accounts is not None:
            # First: it takes SIGHUP over before the first read (SIGHUP's default ends a
            # process).
            runs.append(self.accounts.watch(self._stop))
        runs.append(self.consumer.run_forever())
        if self.arrivals is not None:
            runs.append(self.arrivals.run_forever())
        try:
            await asyncio.gather(*runs)
        finally:
            self._stop.set()

    def request_stop(self) -> None:
        """Stop reading; batches in hand are finished or left pending."""
        self._stop.set()
        self.consumer.request_stop()
        if self.arrivals is not None:
            self.arrivals.request_stop()

    async def drain(self) -> None:
        """Tests: deliver until nothing is readable or held for a retry."""
        if self.arrivals is not None:
            await self.arrivals.run_until_idle()
        await self.consumer.run_until_idle()

    async def close(self) -> None:
        """Let deliveries still running finish (bounded), then close the handler and the
        HTTP session."""
        await self.deliveries.close(self._close_wait_s)
        if isinstance(self.deliverer.graph, BatchingGraphClient):
            await self.deliverer.graph.close()
        await self.deliverer.presence.close()
        await self._presence_session.close()
        if self.media is not None:
            await self.media.close()
        await self.bot.close()
        await self.store.close()
        await self._session.close()


async def _bot(settings: SenderSettings, accounts: LiveAccounts[AccountSend] | None) -> Bot:
    """The environment's handler, or each account's (the accounts file)."""
    if accounts is None:
        return await build_bot(
            settings.handler,
            secret=settings.handler_secret,
            timeout_ms=settings.handler_timeout_ms,
        )
    bots = AccountBots(accounts)
    try:
        await bots.open()
    except BaseException:
        await bots.close()
        raise
    return bots
