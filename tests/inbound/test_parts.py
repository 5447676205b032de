"""What each copy of a body of several conversations applies (common/inbound_parts.py)."""

from __future__ import annotations

from lull.common.delivery import DeliveryFailure
from lull.common.events import Event, Parsed, Turn
from lull.common.inbound_parts import (
    conversations,
    only_part,
    part_field,
    parts_of,
    read_part_field,
)
from tests.inbound.bodies import PAGE, users_on_parts


def _event(user: str, mid: str) -> Event:
    return Event("messenger", PAGE, user, mid, 1, "text", text=mid)


def test_each_copy_applies_its_conversations_and_the_home_copy_the_rest() -> None:
    users = users_on_parts(3, 2)
    failure = DeliveryFailure("whatsapp", "wa1", "wamid.1", 1, "u", 131026)
    parsed = Parsed(
        events=[_event(users[2][0], "a"), _event(users[0][0], "b"), _event(users[2][1], "c")],
        ignored=[("messenger", "read")],
        failures=[failure],
        turns=[Turn("messenger", PAGE, users[1][0], "echo", 1, mid="e")],
    )
    assert conversations(parsed) == [
        f"messenger:{PAGE}:{u}" for u in (users[2][0], users[0][0], users[2][1], users[1][0])
    ]
    assert parts_of(parsed, b"", 3) == [2, 0, 1]  # home first: the first conversation's
    home, part0, part1 = (only_part(parsed, part, 3) for part in (2, 0, 1))
    assert [e.mid for e in home.events] == ["a", "c"]
    assert (home.ignored, home.failures, home.turns) == ([("messenger", "read")], [failure], [])
    assert [e.mid for e in part0.events] == ["b"]
    assert (part0.ignored, part0.failures, part0.turns) == ([], [], [])
    assert (part1.events, [t.mid for t in part1.turns], part1.failures) == ([], ["e"], [])


def test_the_part_field_reads_back_and_a_bad_one_means_the_whole_body() -> None:
    assert read_part_field(part_field(2, 3)) == (2, 3)
    for bad in (None, b"", b"3/3", b"-1/3", b"x/3", b"1", b"1/0"):
        assert read_part_field(bad) is None, bad
