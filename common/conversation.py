"""The conversation key: platform:account_id:user_id."""

from __future__ import annotations

import re

from lull.common.batch import PLATFORMS
from lull.common.outside_text import cut

CONVERSATION_FORMS = f"platform:account_id:user_id, platform one of {', '.join(PLATFORMS)}"
MAX_CONVERSATION_CHARS = 512
_NOT_IN_IDS = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def check_conversation(conversation: str) -> str:
    """The conversation key as the processor writes it; ValueError when it cannot be one."""
    platform, account, user = [*conversation.split(":", 2), "", ""][:3]
    # Meta's ids (page, account, phone number, PSID, BSUID) are short and hold no space or
    # control character; a key with one is a typo or a probe, and would be echoed.
    odd = len(conversation) > MAX_CONVERSATION_CHARS or _NOT_IN_IDS.search(conversation)
    if platform not in PLATFORMS or not account or not user or odd:
        raise ValueError(
            f"{cut(conversation, 100)!r} is not a conversation: expected {CONVERSATION_FORMS}"
        )
    return conversation
