"""Presence calls of one account in one moment go to Meta as one Graph API batch request
(sender/presence/batch.py), against the fake Graph API on loopback: each call answered as it
would be alone, a batch of more than 50 split, a refused batch sent call by call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from lull.dev.fake_graph import FakeGraph, ScriptedError
from lull.sender.graph.client import GraphClient, GraphError, GraphRequest, GraphRoutes
from lull.sender.presence.batch import BatchedActions
from lull.sender.presence.calls import MARK_SEEN, TYPING_ON, Target, presence_request
from tests.sender.conftest import TOKENS, MakeSender, emit, sent_texts
from tests.sender.test_presence import AfterPresence, actions, presence_count, settle

USERS = [f"u{n}" for n in range(6)]


@pytest.fixture
async def client(graph_server: TestServer) -> AsyncIterator[GraphClient]:
    """A Graph client of the fake's accounts, on a session of its own."""
    routes = GraphRoutes({}, default_base=str(graph_server.make_url("")).rstrip("/"))
    async with aiohttp.ClientSession() as session:
        yield GraphClient(session, routes, TOKENS, 5.0)


def _batched(client: GraphClient, graph_server: TestServer, window_ms: float) -> BatchedActions:
    routes = GraphRoutes({}, default_base=str(graph_server.make_url("")).rstrip("/"))
    return BatchedActions(client, routes, window_ms=window_ms)


def _requests(count: int, action: str = TYPING_ON, account: str = "p1") -> list[GraphRequest]:
    routes = GraphRoutes({})
    made = []
    for n in range(count):
        request = presence_request(
            Target("messenger", account, f"u{n}", ""), action, "v21.0", routes
        )
        assert request is not None
        made.append(request)
    return made


async def test_a_moment_of_presence_calls_goes_in_one_batch_through_the_sender(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender(LULL_SEND_BATCH="off")  # replies alone: the count is presence's
    batched = sender.deliverer.presence.graph
    assert isinstance(batched, BatchedActions)
    batched.batcher.window_ms = (
        300  # every batch's call of each step in one request, on a slow machine
    )
    sender.deliverer.bot = AfterPresence(graph, 2 * len(USERS), [{"text": "hi"}])
    for user in USERS:
        await emit(redis, sender.keys, user, 1, "hello")
    await settle(sender)
    # Each user's mark_seen, then its typing_on (the second waits for the first's answer,
    # so one user's two calls never share a batch, where Meta runs calls in parallel).
    assert graph.batch_requests == 2
    assert batched.batcher.batches == 2
    assert sorted(actions(graph)) == sorted([MARK_SEEN, TYPING_ON] * len(USERS))
    for user in USERS:
        mine = [c["payload"]["sender_action"] for c in graph.presence
                if c["payload"]["recipient"]["id"] == user]  # fmt: skip
        assert mine == [MARK_SEEN, TYPING_ON]
    # Per call, as alone: counted one by one, and every reply once.
    assert presence_count(sender, MARK_SEEN, "sent") == len(USERS)
    assert presence_count(sender, TYPING_ON, "sent") == len(USERS)
    assert sorted(sent_texts(graph)) == [(user, "hi") for user in USERS]


async def test_an_error_of_one_call_in_a_batch_fails_that_call_only(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender(LULL_SEND_BATCH="off")  # replies alone: the count is presence's
    batched = sender.deliverer.presence.graph
    assert isinstance(batched, BatchedActions)
    batched.batcher.window_ms = 300
    graph.script([], 0, presence_errors=[ScriptedError(400, 100, "(#100) no such user")])
    # One call fails (the fake never records it): 2 per user less that one.
    sender.deliverer.bot = AfterPresence(graph, 2 * len(USERS), [{"text": "hi"}])
    for user in USERS:
        await emit(redis, sender.keys, user, 1, "hello")
    await settle(sender)
    assert graph.batch_requests == 2
    assert len(graph.presence) == 2 * len(USERS) - 1
    assert presence_count(sender, MARK_SEEN, "failed") == 1
    assert presence_count(sender, MARK_SEEN, "sent") == len(USERS) - 1
    assert sorted(sent_texts(graph)) == [(user, "hi") for user in USERS]


async def test_each_caller_gets_its_own_calls_error(
    client: GraphClient, graph_server: TestServer, graph: FakeGraph
) -> None:
    batched = _batched(client, graph_server, 200)
    graph.script([], 0, presence_errors=[ScriptedError(400, 613, "(#613) calls exceeded")])
    results = await asyncio.gather(
        *(batched.post_action(r) for r in _requests(3)), return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, GraphError)]
    assert len(errors) == 1 and errors[0].kind == "throttle" and errors[0].code == 613
    assert results.count(None) == 2
    assert graph.batch_requests == 1 and len(graph.presence) == 2


async def test_more_than_50_calls_are_split_into_batches_of_50(
    client: GraphClient, graph_server: TestServer, graph: FakeGraph
) -> None:
    batched = _batched(client, graph_server, 200)
    await asyncio.gather(*(batched.post_action(r) for r in _requests(120)))
    assert graph.batch_requests == 3  # 50, 50, then 20 when the window ends
    assert sorted(c["payload"]["recipient"]["id"] for c in graph.presence) == sorted(
        f"u{n}" for n in range(120)
    )


async def test_the_accounts_batch_apart(
    client: GraphClient, graph_server: TestServer, graph: FakeGraph
) -> None:
    batched = _batched(client, graph_server, 200)
    both = _requests(3, account="p1") + _requests(3, account="ig1")
    await asyncio.gather(*(batched.post_action(r) for r in both))
    assert graph.batch_requests == 2
    assert sorted(c["account_id"] for c in graph.presence) == ["ig1"] * 3 + ["p1"] * 3


async def test_a_refused_batch_is_sent_call_by_call(
    client: GraphClient, graph_server: TestServer, graph: FakeGraph
) -> None:
    batched = _batched(client, graph_server, 200)
    graph.script([], 0, batch_errors=[ScriptedError(500, 2, "Service temporarily unavailable")])
    await asyncio.gather(*(batched.post_action(r) for r in _requests(4)))
    assert graph.batch_requests == 1  # refused; then each call alone
    assert len(graph.presence) == 4 and graph.presence_calls == 4
    # Meta's trouble passes: the next moment's calls batch again.
    await asyncio.gather(*(batched.post_action(r) for r in _requests(4)))
    assert graph.batch_requests == 2 and len(graph.presence) == 8


async def test_a_batch_refused_for_good_stops_batching_the_account(
    client: GraphClient, graph_server: TestServer, graph: FakeGraph
) -> None:
    batched = _batched(client, graph_server, 200)
    graph.script([], 0, batch_errors=[ScriptedError(400, 3, "(#3) capability missing")])
    await asyncio.gather(*(batched.post_action(r) for r in _requests(4)))
    await asyncio.gather(*(batched.post_action(r) for r in _requests(4)))
    assert graph.batch_requests == 1
    assert len(graph.presence) == 8


async def test_the_fake_refuses_a_batch_of_more_than_50(
    client: GraphClient, graph_server: TestServer, graph: FakeGraph
) -> None:
    with pytest.raises(GraphError) as refused:
        await client.post_batch("p1", "messenger", _requests(51))
    assert refused.value.code == 100 and refused.value.kind == "permanent"
    assert graph.presence == []


async def test_whatsapp_calls_never_batch(
    client: GraphClient, graph_server: TestServer, graph: FakeGraph
) -> None:
    batched = _batched(client, graph_server, 200)
    routes = GraphRoutes({})
    reads = [
        presence_request(Target("whatsapp", "wa1", "15550000002", f"wamid.{n}"), "read", "v21.0",
                         routes)
        for n in range(3)
    ]  # fmt: skip
    await asyncio.gather(*(batched.post_action(r) for r in reads if r is not None))
    assert graph.batch_requests == 0 and len(graph.presence) == 3


async def test_zero_window_sends_each_call_alone(
    client: GraphClient, graph_server: TestServer, graph: FakeGraph
) -> None:
    batched = _batched(client, graph_server, 0)
    await asyncio.gather(*(batched.post_action(r) for r in _requests(3)))
    assert graph.batch_requests == 0 and len(graph.presence) == 3
