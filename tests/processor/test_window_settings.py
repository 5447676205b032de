"""A window keeps the settings it was opened with (issue 23): a reload of the accounts file
changes the windows opened after it, never the deadline or caps of one already open. A
window opened before it stored its settings follows each event's, as it did."""

from __future__ import annotations

from dataclasses import replace

import redis.asyncio as aioredis

from lull.common.events import Event
from lull.common.store.keys import Keys
from lull.common.store.windows import ADDED, OPENED, WindowShape, WindowStore
from tests.processor.test_seen_upgrade import CONVERSATION, old_record, write_old_key
from tests.processor.windowing import batches, message, redis_now_ms, window_settings

MINUTE_MS = 60_000


class Reloadable:
    """The account's settings as the accounts file says now: what the processor passes."""

    def __init__(self, shape: WindowShape) -> None:
        self.shape = shape

    def __call__(self, _event: Event) -> WindowShape:
        return self.shape


def _store(redis: aioredis.Redis, namespace: str) -> tuple[WindowStore, Reloadable, Keys]:
    settings = window_settings(window_ms=400, max_wait_ms=MINUTE_MS)
    shapes = Reloadable(WindowShape.of(settings))
    keys = Keys(namespace)
    return WindowStore(redis, keys, settings, shapes), shapes, keys


async def test_an_open_window_keeps_its_settings_and_the_next_takes_the_new(
    redis: aioredis.Redis, namespace: str
) -> None:
    store, shapes, keys = _store(redis, namespace)
    await store.load_scripts()
    now = await redis_now_ms(redis)
    [first] = await store.apply([(message("m1", now), now)])
    assert (first.status, first.deadline_ms) == (OPENED, now + 400)

    # The reload: a longer gap, and reactions flush.
    shapes.shape = replace(shapes.shape, window_ms=900, flush_on=frozenset({"reaction"}))
    [joined] = await store.apply([(message("m2", now + 100), now)])
    assert (joined.status, joined.deadline_ms) == (ADDED, now + 100 + 400)
    [reaction] = await store.apply([(message("m3", now + 200, kind="reaction"), now)])
    assert (reaction.status, reaction.deadline_ms) == (ADDED, now + 200 + 400)
    await store.close_due(0, 10, everything=True)

    # The next window is opened with the settings of now.
    [fourth] = await store.apply([(message("m4", now + 300), now)])
    assert (fourth.status, fourth.deadline_ms) == (OPENED, now + 300 + 900)
    [flushed] = await store.apply([(message("m5", now + 350, kind="reaction"), now)])
    assert flushed.deadline_ms <= await redis_now_ms(redis)
    await store.close_due(0, 10, everything=True)
    got = [[m["mid"] for m in b["messages"]] for b in await batches(redis, keys)]
    assert got == [["m1", "m2", "m3"], ["m4", "m5"]]


async def test_a_window_opened_before_the_stored_settings_follows_the_events(
    redis: aioredis.Redis, namespace: str
) -> None:
    store, shapes, keys = _store(redis, namespace)
    await store.load_scripts()
    now = await redis_now_ms(redis)
    # An open window written by the layout before this one: no settings in it.
    await write_old_key(redis, keys, b"", old_record("old1", now, 1), now + MINUTE_MS)
    shapes.shape = replace(shapes.shape, window_ms=700)
    [joined] = await store.apply([(message("m2", now + 100), now)])
    assert (joined.status, joined.deadline_ms) == (ADDED, now + 100 + 700)
    await store.close_due(0, 10, everything=True)
    [batch] = await batches(redis, keys)
    assert batch["conversation"] == CONVERSATION
    assert [m["mid"] for m in batch["messages"]] == ["old1", "m2"]
