"""One Graph API call the sender makes: built from the bot's reply (sender/graph/payload.py),
kept in a batch's send state between attempts (common/store/deliveries.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class GraphRequest:
    """One Send API call: the account whose token signs it, the path, the JSON body, and the
    platform, whose Graph host it goes to."""

    account_id: str
    path: str
    payload: dict[str, Any]
    platform: str = ""
    """Empty in send states saved before lull knew a host per platform: the default host."""
    tag: str = ""
    """Messenger/Instagram: the bot's message tag, put in the payload only when the request
    is sent after the 24-hour window (sender/reply_window.py); empty: none."""
