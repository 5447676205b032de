"""Consumer outcomes are values a handler returns: raising one is an error, not a decision."""

from __future__ import annotations

import dataclasses

import pytest

from lull.common.consumer import Permanent, RetryLater


@pytest.mark.parametrize("outcome", [RetryLater(10, "rate limit"), Permanent("bad entry")])
def test_an_outcome_cannot_be_raised(outcome: object) -> None:
    # 0.1's outcomes were exceptions: a raised RetryLater counted as a handler failure and
    # could dead-letter a lone entry. As values, a raise fails at once, where it is written.
    assert not isinstance(outcome, BaseException)
    with pytest.raises(TypeError, match="exceptions must derive from BaseException"):
        raise outcome  # type: ignore[misc]


def test_outcomes_are_frozen_values() -> None:
    assert RetryLater(5, "x") == RetryLater(5, "x")
    assert RetryLater(-3).delay_ms == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        RetryLater(5).delay_ms = 1  # type: ignore[misc]
