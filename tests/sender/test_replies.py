"""Reply validation and text splitting."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lull.common.replies import (
    HANDOFF_REASON_MAX_CHARS,
    TEXT_LIMITS,
    TEXT_SIZES,
    BotAnswer,
    Handoff,
    Reply,
    parse_answer,
    parse_replies,
    split_text,
    utf8_size,
)


def test_text_attachment_and_quick_replies_parse() -> None:
    replies = parse_replies(
        [
            {"text": "hello"},
            {"attachment": {"type": "image", "url": "https://example.com/a.png"}},
            {"text": "pick", "quick_replies": [{"title": "Red", "payload": "RED"}]},
        ]
    )
    assert replies == [
        Reply(text="hello", attachment=None, quick_replies=None),
        Reply(
            text=None,
            attachment={"type": "image", "url": "https://example.com/a.png"},
            quick_replies=None,
        ),
        Reply(text="pick", attachment=None, quick_replies=[{"title": "Red", "payload": "RED"}]),
    ]


def test_none_and_empty_mean_no_replies() -> None:
    assert parse_replies(None) == []
    assert parse_replies([]) == []


def test_empty_quick_replies_are_dropped() -> None:
    assert parse_replies([{"text": "x", "quick_replies": []}])[0].quick_replies is None


def test_every_attachment_type_is_accepted() -> None:
    for kind in ("image", "audio", "video", "file", "document"):
        reply = parse_replies([{"attachment": {"type": kind, "url": "http://h/x"}}])[0]
        assert reply.attachment == {"type": kind, "url": "http://h/x"}


def _qr(count: int) -> list[dict[str, str]]:
    return [{"title": f"t{i}", "payload": f"p{i}"} for i in range(count)]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"text": "x"}, "must be a list"),
        ("hello", "must be a list"),
        (["hello"], r"replies\[0\] must be an object"),
        ([{}], "exactly one of text, attachment or template"),
        ([{"text": "a", "attachment": {"type": "image", "url": "https://h/x"}}], "exactly one"),
        ([{"text": ""}], "text must be a non-empty string"),
        ([{"text": "   "}], "text must be a non-empty string"),
        ([{"text": 5}], "text must be a non-empty string"),
        ([{"text": "x", "buttons": []}], "unknown keys \\['buttons'\\]"),
        ([{"attachment": "https://h/x"}], "attachment must be an object"),
        ([{"attachment": {"type": "image"}}], "exactly the keys type and url"),
        ([{"attachment": {"type": "gif", "url": "https://h/x"}}], "type must be one of"),
        ([{"attachment": {"type": ["image"], "url": "https://h/x"}}], "type must be one of"),
        ([{"attachment": {"type": "image", "url": "ftp://h/x"}}], "http\\(s\\) URL"),
        ([{"attachment": {"type": "image", "url": "https:///x"}}], "http\\(s\\) URL"),
        ([{"attachment": {"type": "image", "url": 7}}], "http\\(s\\) URL"),
        ([{"text": "x", "quick_replies": {"title": "a"}}], "quick_replies must be a list"),
        ([{"text": "x", "quick_replies": _qr(14)}], "14 items; at most 13"),
        ([{"text": "x", "quick_replies": [{"title": "a"}]}], "exactly the keys title and payload"),
        ([{"text": "x", "quick_replies": ["a"]}], "exactly the keys title and payload"),
        ([{"text": "x", "quick_replies": [{"title": "", "payload": "p"}]}], "title must be"),
        ([{"text": "x", "quick_replies": [{"title": "a", "payload": 3}]}], "payload must be"),
        # Meta's 24-hour window: a tag must be one Meta has, a template must be well formed.
        ([{"text": "x", "tag": "NON_PROMOTIONAL_SUBSCRIPTION"}], r"tag must be one of \["),
        ([{"text": "x", "tag": "human_agent"}], "tag must be one of"),
        ([{"text": "x", "tag": 1}], "tag must be one of"),
        ([{"text": "x", "template": {"name": "t", "language": "en"}}], "exactly one of"),
        ([{"template": "hello_world"}], "template must be an object"),
        ([{"template": {"name": "t"}}], "template.language must be"),
        ([{"template": {"name": "t", "language": {"code": "en"}}}], "template.language must be"),
        ([{"template": {"name": "", "language": "en"}}], "template.name must be"),
        ([{"template": {"name": "t", "language": "en", "components": {}}}], "components must be"),
        (
            [{"template": {"name": "t", "language": "en", "components": ["body"]}}],
            "components must be",
        ),
        ([{"template": {"name": "t", "language": "en", "namespace": "x"}}], "unknown keys"),
        (
            [{"template": {"name": "t", "language": "en"}, "quick_replies": _qr(1)}],
            "no quick_replies",
        ),
    ],
)
def test_bad_replies_are_refused_with_a_reason(value: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_replies(value)


def test_thirteen_quick_replies_are_fine() -> None:
    reply = parse_replies([{"text": "x", "quick_replies": _qr(13)}])[0]
    assert reply.quick_replies is not None
    assert len(reply.quick_replies) == 13


def test_short_text_is_one_chunk_unchanged() -> None:
    assert split_text("  hi\nthere ", 20) == ["  hi\nthere "]
    assert split_text("x" * 20, 20) == ["x" * 20]


def test_blank_text_has_no_chunks() -> None:
    assert split_text("", 10) == []
    assert split_text(" \n ", 10) == []


def test_long_text_splits_at_whitespace() -> None:
    assert split_text("aaa bbb ccc ddd", 7) == ["aaa bbb", "ccc ddd"]
    assert split_text("aaa bbb ccc ddd", 8) == ["aaa bbb", "ccc ddd"]


def test_a_word_longer_than_the_limit_is_cut_hard() -> None:
    assert split_text("ab " + "x" * 12, 5) == ["ab", "xxxxx", "xxxxx", "xx"]


def test_a_late_line_break_is_preferred_to_a_space() -> None:
    text = "one two three\nfour five"
    assert split_text(text, 20) == ["one two three", "four five"]


def test_platform_limits() -> None:
    text = " ".join(["word"] * 900)  # 4499 characters
    assert [len(c) <= 2000 for c in split_text(text, TEXT_LIMITS["messenger"])] == [True] * 3
    assert len(split_text(text, TEXT_LIMITS["whatsapp"])) == 2


def test_instagram_counts_utf8_bytes() -> None:
    # Meta: "Message text must be UTF-8 and be a 1000 bytes or less", and "less than 1000
    # characters": 999 bytes keeps both.
    assert (TEXT_LIMITS["instagram"], TEXT_SIZES["instagram"]) == (999, utf8_size)
    text = " ".join(["café"] * 400)  # 1999 characters, 2399 bytes
    chunks = split_text(text, 999, utf8_size)
    assert [utf8_size(chunk) <= 999 for chunk in chunks] == [True] * 3
    assert " ".join(chunks) == text
    assert split_text("😀" * 300, 999, utf8_size) == ["😀" * 249, "😀" * 51]
    assert split_text("x" * 1000, 999, utf8_size) == ["x" * 999, "x"]


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        split_text("x", 0)


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from("ab \n\t"), max_size=300),
    limit=st.integers(min_value=1, max_value=40),
)
def test_split_keeps_every_character_in_order_within_the_limit(text: str, limit: int) -> None:
    chunks = split_text(text, limit)
    assert all(0 < len(chunk) <= limit and chunk.strip() for chunk in chunks)
    assert "".join("".join(chunk.split()) for chunk in chunks) == "".join(text.split())


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from("aé€😀 \n"), max_size=300),
    limit=st.integers(min_value=4, max_value=40),
)
def test_split_by_bytes_keeps_every_character_in_order_within_the_limit(
    text: str, limit: int
) -> None:
    chunks = split_text(text, limit, utf8_size)
    assert all(0 < utf8_size(chunk) <= limit and chunk.strip() for chunk in chunks)
    assert "".join("".join(chunk.split()) for chunk in chunks) == "".join(text.split())


def test_an_answer_is_a_list_of_replies_or_an_object_with_a_handoff() -> None:
    assert parse_answer([{"text": "hi"}]) == BotAnswer([Reply("hi", None, None)])
    both = parse_answer({"replies": [{"text": "bye"}], "handoff": {"reason": " refund "}})
    assert both == BotAnswer([Reply("bye", None, None)], Handoff("refund"))
    assert parse_answer({"handoff": {"reason": ""}}) == BotAnswer([], Handoff(""))
    assert parse_answer({"replies": [], "handoff": None}) == BotAnswer([])
    long = parse_answer({"handoff": {"reason": "x" * 5000}}).handoff
    assert long is not None and len(long.reason) == HANDOFF_REASON_MAX_CHARS


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"handoff": "human"}, "handoff must be an object"),
        ({"handoff": {"reason": "r", "to": "ann"}}, "unknown keys \\['to'\\]"),
        ({"handoff": {"reason": 3}}, "handoff.reason must be a string"),
        ({"handoff": {}}, 'handoff needs a "reason"'),
    ],
)
def test_bad_handoffs_are_refused_with_a_reason(value: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_answer(value)


def test_a_tag_and_a_template_are_kept_for_the_window() -> None:
    tagged, template = parse_replies(
        [
            {"text": "We found your order.", "tag": "HUMAN_AGENT"},
            {"template": {"name": "order_update", "language": "en_US",
                          "components": [{"type": "body", "parameters": []}]}},
        ]
    )  # fmt: skip
    assert (tagged.tag, tagged.template) == ("HUMAN_AGENT", None)
    assert template.template is not None
    assert (template.template.name, template.template.language) == ("order_update", "en_US")
    assert template.template.components == [{"type": "body", "parameters": []}]
