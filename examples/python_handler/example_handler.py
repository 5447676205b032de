"""A `python:` handler: lull's sender calls it in its own process, no HTTP in between.

    PYTHONPATH=examples/python_handler LULL_HANDLER=python:example_handler:reply make run

lull imports `example_handler` at start (so the folder holding it must be on PYTHONPATH)
and awaits `reply(batch)` for each batch, under LULL_HANDLER_TIMEOUT_MS. The batch is the
same JSON object an HTTP bot receives, `history` included; the function returns the
replies, the list an HTTP bot answers in `{"replies": [...]}` ([] for none). Raising
BotRetry (lull.sender.bot) asks for a later attempt, BotPermanent dead-letters the batch;
any other exception counts as temporary.
"""

from __future__ import annotations

from typing import Any

MENU = [
    {"title": "Opening hours", "payload": "HOURS"},
    {"title": "Talk to a person", "payload": "HUMAN"},
]


async def reply(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """One answer per batch: a greeting with quick replies on a conversation's first turn,
    then what the user said, and nothing for a batch without text."""
    text = batch["text"].strip()
    if not text:
        # Only attachments (or a reaction): nothing to say.
        return []
    said_before = any(item.get("role") == "user" for item in batch.get("history", []))
    if said_before:
        return [{"text": f"You said: {text}"}]
    # Quick replies show as buttons under the message; a tap comes back as a message of
    # kind "quick_reply" whose raw item carries the payload.
    return [{"text": f"Hello! You said: {text}", "quick_replies": MENU}]
