"""The split inbound stream's keys and settings: default 1 is the stream of before, each part
of n sits in its own n-th of the cluster slots, a conversation always goes to one part."""

from __future__ import annotations

import zlib
from collections import Counter

import pytest
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from lull.common.env import ConfigError
from lull.common.settings import CommonSettings
from lull.common.store.keys import MAX_INBOUND_PARTS, Keys, inbound_part


def test_one_part_is_the_one_inbound_stream_of_before() -> None:
    keys = CommonSettings.from_env({"LULL_NAMESPACE": "lull"}).keys()
    assert keys.inbound_parts == 1
    assert keys.inbound() == "lull:in"
    assert keys.all_inbound() == ["lull:in"]


def test_part_names_are_fixed() -> None:
    # Names are part of the storage layout: a release that changed them would strand
    # entries written before it.
    assert Keys("lull", inbound_parts=3).all_inbound() == [
        "lull:in:0/3:{i0}",
        "lull:in:1/3:{i1}",
        "lull:in:2/3:{i3}",
    ]


@pytest.mark.parametrize("parts", [2, 3, 4, 5, 7, 16, 100, MAX_INBOUND_PARTS])
def test_each_part_sits_in_its_own_share_of_the_slots(parts: int) -> None:
    streams = Keys("ns", inbound_parts=parts).all_inbound()
    assert len(set(streams)) == parts
    for part, stream in enumerate(streams):
        slot = key_slot(stream.encode())
        first, end = (n * REDIS_CLUSTER_HASH_SLOTS // parts for n in (part, part + 1))
        assert first <= slot < end, (stream, slot)


def test_a_conversation_has_one_stable_part_and_conversations_spread() -> None:
    conversations = [f"whatsapp:106{n % 7}:3491{n}" for n in range(3000)]
    parts = [inbound_part(c, 3) for c in conversations]
    # Stable: a plain CRC-32, the same in every process and release.
    assert parts == [zlib.crc32(c.encode()) % 3 for c in conversations]
    assert all(800 <= count <= 1200 for count in Counter(parts).values())


def test_drained_counts_are_read_before_the_current_parts() -> None:
    keys = CommonSettings.from_env(
        {"LULL_NAMESPACE": "n", "LULL_INBOUND_SHARDS": "2", "LULL_INBOUND_DRAIN": "1, 3,2"}
    ).keys()
    assert keys.inbound_drain == (1, 3, 2)
    assert keys.all_inbound() == ["n:in", *keys.inbound_streams(3), *keys.inbound_streams(2)]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LULL_INBOUND_SHARDS", "0"),
        ("LULL_INBOUND_SHARDS", str(MAX_INBOUND_PARTS + 1)),
        ("LULL_INBOUND_SHARDS", "three"),
        ("LULL_INBOUND_DRAIN", "1,x"),
        ("LULL_INBOUND_DRAIN", "0"),
        ("LULL_INBOUND_DRAIN", "1,257"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name) as raised:
        CommonSettings.from_env({name: value})
    assert value in str(raised.value)
