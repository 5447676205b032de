"""The conversation: one user of one account on one platform, and its key
`platform:account_id:user_id`, formatted and parsed here only.

The key names the conversation everywhere: in its Redis keys (common/store/keys.py), in the
batch (`conversation`, `batch_id`), in logs, `lull pause` and the admin API. It splits back
at its first two colons (window_close.lua does it in Lua, for the batch's fields), so a
platform or an account id holding ':' would make a key that names another conversation:
`of` refuses it. Meta's ids never hold one: they are digits (a WhatsApp user whose phone
number Meta withholds has a business-scoped id such as US.13491208655302741918).

What an operator or a CRM types goes through `parse`, which also checks each id's shape
(ID_SHAPE; dev and test ids are words such as p1 or u1), so a hostile or mistyped key
(spaces, control characters, a glob, an empty part) is refused where it enters, with the
form that is expected, before anything is built from it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from lull.common.outside_text import cut

PLATFORMS = ("messenger", "instagram", "whatsapp")
"""The platforms lull takes webhooks from."""
MAX_ID_CHARS = 128
"""The longest account or user id `parse` accepts (Meta's are 15 to 20 characters)."""
ID_SHAPE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_ID_CHARS - 1}}}")
"""An account or user id as `parse` accepts it, on every platform: Meta's digits, a
WhatsApp BSUID (country code, '.', digits), the words dev and tests use."""
CONVERSATION_FORMS = f"platform:account_id:user_id, platform one of {', '.join(PLATFORMS)}"
_FIELDS = ("platform", "account_id", "user_id")


class BadConversation(ValueError):
    """A conversation key or its parts that cannot name a conversation."""


@dataclass(frozen=True, slots=True)
class Conversation:
    """One conversation: (platform, account_id, user_id); `key` is its one text form."""

    platform: str
    account_id: str
    """Page id (Messenger), Instagram account id, or WhatsApp phone_number_id."""
    user_id: str
    """PSID, IGSID, or for WhatsApp the wa_id or the BSUID."""

    @classmethod
    def of(cls, platform: str, account_id: str, user_id: str) -> Conversation:
        """From a parsed webhook's ids; BadConversation when its key would not split back
        into them (a ':' in the platform or the account id: a forged or broken body)."""
        if ":" in platform or ":" in account_id:
            raise BadConversation(
                f"{platform}:{account_id}: a platform or account id holds ':', "
                "so the conversation key would name another conversation"
            )
        return cls(platform, account_id, user_id)

    @classmethod
    def parse(cls, text: str) -> Conversation:
        """From a key an operator typed (`lull pause`, `lull flush`, the admin API), checked
        strictly: a known platform and two ids of ID_SHAPE. BadConversation says why."""
        platform, account_id, user_id = [*text.split(":", 2), "", ""][:3]
        expected = f"{cut(text, 100)!r} is not a conversation: expected {CONVERSATION_FORMS}"
        if platform not in PLATFORMS or not account_id or not user_id:
            raise BadConversation(expected)
        for name, value in (("account_id", account_id), ("user_id", user_id)):
            if ID_SHAPE.fullmatch(value) is None:
                raise BadConversation(
                    f"{expected} ({name}: 1 to {MAX_ID_CHARS} of A-Z a-z 0-9 . _ -)"
                )
        return cls(platform, account_id, user_id)

    @classmethod
    def from_fields(cls, fields: Mapping[bytes, bytes]) -> Conversation | None:
        """From a stream entry's platform, account_id and user_id (written by `fields`);
        None when one is missing or not UTF-8."""
        try:
            platform, account_id, user_id = (fields[name.encode()].decode() for name in _FIELDS)
        except (KeyError, UnicodeDecodeError):
            return None
        return cls(platform, account_id, user_id)

    @property
    def key(self) -> str:
        """`platform:account_id:user_id`: the conversation's name in Redis keys, batches, logs."""
        return f"{self.platform}:{self.account_id}:{self.user_id}"

    def fields(self) -> dict[str, str]:
        """The three ids as stream entry fields (platform, account_id, user_id)."""
        return {"platform": self.platform, "account_id": self.account_id, "user_id": self.user_id}

    def __str__(self) -> str:
        return self.key
