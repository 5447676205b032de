"""Ingest on a split inbound stream: a body goes whole to the part of each of its
conversations, a copy of several is marked with its part, and nothing is refused."""

from __future__ import annotations

import zlib
from typing import cast

import redis.asyncio as aioredis

from lull.common.inbound_parts import PART_FIELD
from lull.common.store.keys import Keys
from tests.conftest import FIXTURES
from tests.inbound.bodies import messenger_body, post_all, users_on_parts

Entries = list[tuple[bytes, dict[bytes, bytes]]]


async def entries_per_part(redis: aioredis.Redis, keys: Keys) -> list[list[dict[bytes, bytes]]]:
    """The fields of every entry, per stream of keys.all_inbound()."""
    found = []
    for stream in keys.all_inbound():
        found.append([fields for _, fields in cast(Entries, await redis.xrange(stream))])
    return found


async def test_one_part_writes_the_entry_of_before(
    redis: aioredis.Redis, base_env: dict[str, str], namespace: str
) -> None:
    [[a], [b]] = users_on_parts(2, 1)
    body = messenger_body([(a, "m1", "hi", 1), (b, "m2", "yo", 2)])
    assert await post_all(base_env, [body]) == [200]
    [[fields]] = await entries_per_part(redis, Keys(namespace))
    assert set(fields) == {b"body", b"received_at", b"sig"}
    assert fields[b"body"] == body


async def test_a_body_of_several_conversations_is_copied_to_each_of_their_parts(
    redis: aioredis.Redis, base_env: dict[str, str], namespace: str
) -> None:
    env = {**base_env, "LULL_INBOUND_SHARDS": "3"}
    keys = Keys(namespace, inbound_parts=3)
    users = users_on_parts(3, 2)
    # Parts 2 and 0 (two conversations each), none of part 1; the home part is 2's.
    mixed = messenger_body(
        [(users[2][0], "m1", "a", 1), (users[0][0], "m2", "b", 2), (users[0][1], "m3", "c", 3),
         (users[2][1], "m4", "d", 4), (users[2][0], "m5", "e", 5)]
    )  # fmt: skip
    alone = messenger_body([(users[1][0], "m6", "f", 6), (users[1][0], "m7", "g", 7)])
    assert await post_all(env, [mixed, alone]) == [200, 200]
    part0, part1, part2 = await entries_per_part(redis, keys)
    assert [f[b"body"] for f in part0] == [mixed]
    assert [f[b"body"] for f in part2] == [mixed]
    assert part0[0][PART_FIELD] == b"0/3"
    assert part2[0][PART_FIELD] == b"2/3"
    # A body of one conversation is one entry, as before: no part field.
    assert [f[b"body"] for f in part1] == [alone]
    assert PART_FIELD not in part1[0]
    assert part0[0][b"received_at"] == part2[0][b"received_at"]


async def test_a_body_of_no_conversation_is_stored_where_its_bytes_hash(
    redis: aioredis.Redis, base_env: dict[str, str], namespace: str
) -> None:
    env = {**base_env, "LULL_INBOUND_SHARDS": "4"}
    keys = Keys(namespace, inbound_parts=4)
    statuses = [(FIXTURES / f"whatsapp/statuses_{s}.json").read_bytes() for s in ("sent", "read")]
    unknown = b'{"object":"user","entry":[{"id":"1","changes":[{"field":"feed"}]}]}'
    broken = b'{"object":"page","entry":[{"id":"1","messaging":[{"sender":7}]}]}'
    bodies = [*statuses, unknown, broken]
    assert await post_all(env, bodies) == [200] * len(bodies)
    per_part = await entries_per_part(redis, keys)
    for body in bodies:
        holders = [p for p, found in enumerate(per_part) if body in [f[b"body"] for f in found]]
        assert holders == [zlib.crc32(body) % 4]
    assert sum(len(found) for found in per_part) == len(bodies)
