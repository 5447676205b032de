"""The metrics deploy/prometheus/alerts.yml needs, against a real Redis: overdue windows
(LullWindowOverdue) and consumers per group (LullNoConsumers)."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from lull.common.consumer import Consumer, ConsumerConfig, Entry, Outcome
from lull.common.store.keys import Keys
from lull.common.store.streams import ensure_group, group_info
from lull.common.store.windows import WindowStore
from lull.processor.closer import Closer
from lull.processor.metrics import ProcessorMetrics
from tests.processor.windowing import message, redis_now_ms, window_settings

OVERDUE = "lull_processor_window_overdue_seconds"
WINDOW_MS = 60_000


class FakeClock:
    """A monotonic clock the test moves: time passes without sleeping."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        """Seconds, as time.monotonic() gives them."""
        return self.now_s


@pytest.fixture
def clock() -> FakeClock:
    """The metrics' clock."""
    return FakeClock()


@pytest.fixture
async def parts(
    redis: aioredis.Redis, namespace: str, clock: FakeClock
) -> tuple[WindowStore, Closer, CollectorRegistry]:
    """A window store and its closer on one shard, with the metrics on the fake clock."""
    settings = window_settings(window_ms=WINDOW_MS, max_wait_ms=WINDOW_MS)
    store = WindowStore(redis, Keys(namespace, 1), settings)
    await store.load_scripts()
    registry = CollectorRegistry()
    closer = Closer(store, 1, settings.grace_ms, ProcessorMetrics(registry, clock_s=clock))
    return store, closer, registry


def overdue_s(registry: CollectorRegistry) -> float:
    """The overdue gauge as a scrape reads it."""
    value = registry.get_sample_value(OVERDUE)
    assert value is not None
    return value


async def test_overdue_is_zero_without_windows_and_before_the_deadline(
    parts: tuple[WindowStore, Closer, CollectorRegistry], redis: aioredis.Redis
) -> None:
    store, closer, registry = parts
    assert overdue_s(registry) == 0.0  # no look yet
    await closer.close_due()
    assert overdue_s(registry) == 0.0  # nothing open
    now = await redis_now_ms(redis)
    await store.apply([(message("m1", now), now)])
    await closer.close_due()
    assert overdue_s(registry) == 0.0  # open, due in a minute


async def test_overdue_grows_while_the_closer_does_not_look_and_resets_when_it_closes(
    parts: tuple[WindowStore, Closer, CollectorRegistry], redis: aioredis.Redis, clock: FakeClock
) -> None:
    store, closer, registry = parts
    now = await redis_now_ms(redis)
    [applied] = await store.apply([(message("m1", now), now)])
    _, next_deadline, looked_ms = await closer.close_due()
    assert next_deadline == applied.deadline_ms == now + WINDOW_MS

    # A closer that stopped looking (stuck, Redis down): the gauge runs on the Redis clock
    # extrapolated from the last look, not frozen at its last value.
    clock.now_s += WINDOW_MS / 1000 + 12
    expected_s = (looked_ms + WINDOW_MS + 12_000 - next_deadline) / 1000
    assert overdue_s(registry) == pytest.approx(expected_s)
    assert overdue_s(registry) > 10  # LullWindowOverdue's threshold

    # The closer looks again and closes it: nothing is open, nothing is overdue.
    closed, next_deadline, _ = await closer.close_due(everything=True)
    assert (closed, next_deadline) == (1, None)
    assert overdue_s(registry) == 0.0


async def test_a_locally_applied_deadline_counts_before_the_closer_sees_it(
    parts: tuple[WindowStore, Closer, CollectorRegistry], redis: aioredis.Redis, clock: FakeClock
) -> None:
    store, closer, registry = parts
    _, _, looked_ms = await closer.close_due()  # nothing open at this look
    now = await redis_now_ms(redis)
    [applied] = await store.apply([(message("m1", now), now)])
    closer.notify(applied.deadline_ms)  # what the inbound handler does after an apply
    clock.now_s += WINDOW_MS / 1000 + 30
    expected_s = (looked_ms + WINDOW_MS + 30_000 - applied.deadline_ms) / 1000
    assert overdue_s(registry) == pytest.approx(expected_s)
    assert overdue_s(registry) > 20


async def test_consumers_per_group_come_from_xinfo_groups(
    redis: aioredis.Redis, namespace: str
) -> None:
    stream = Keys(namespace).inbound()
    config = ConsumerConfig(
        streams=[stream], group="g", dead_stream=Keys(namespace).dead(), consumer="me"
    )
    await ensure_group(redis, stream, "g")
    for name in ("other-1", "other-2"):
        await redis.xgroup_createconsumer(stream, "g", name)
    await redis.xadd(stream, {"n": "1"})

    async def ack_all(_stream: str, entries: list[Entry], /) -> list[Outcome]:
        return [None] * len(entries)

    registry = CollectorRegistry()
    consumer = Consumer(redis, config, ack_all, registry)
    await consumer.run_until_idle()  # "me" joins the group by reading
    await consumer.claim_pass()

    info = await group_info(redis, stream, "g")
    assert info is not None and info.consumers == 3
    labels = {"stream": stream, "group": "g"}
    assert registry.get_sample_value("lull_stream_consumers", labels) == 3
    assert registry.get_sample_value("lull_stream_pending", labels) == 0
