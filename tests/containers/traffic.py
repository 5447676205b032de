"""Bursts sent with `lull simulate` from the host, and what the fake Graph API got back."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from tests.containers.http_get import NotYet, get_json, wait_for
from tests.containers.stack import APP_SECRET, Stack

GAP_MS = 800
SIMULATE_TIMEOUT_S = 180


@dataclass(frozen=True)
class Burst:
    """What one simulated user typed, in order: one burst, so one reply is due."""

    user_id: str
    texts: tuple[str, ...]


@dataclass(frozen=True)
class Verdict:
    """Replies against bursts, message by message (the echo bot answers a batch with its
    texts joined by newlines, so every message of a burst shows up in exactly one reply)."""

    bursts: int
    messages: int
    lost: int
    """Messages no reply holds."""
    duplicates: int
    """Messages answered more than once."""
    split: list[str]
    """Users whose burst was answered in more than one reply, each message once. Expected
    only when a processor dies holding a message: it comes back LULL_CLAIM_IDLE_MS later,
    after its window closed, and opens a window of its own (it is never dropped)."""

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing answered twice."""
        return not (self.lost or self.duplicates)

    def line(self) -> str:
        """A one-line summary."""
        return (
            f"{self.bursts} bursts of {self.messages} messages: {self.lost} lost, "
            f"{self.duplicates} duplicate, {len(self.split)} bursts answered in two replies or more"
        )


def simulate(
    venv_bin: Path, stack: Stack, *, users: int, messages: int, prefix: str, record: Path
) -> subprocess.Popen[bytes]:
    """Start `lull simulate` against the stack's ingest; one JSON line per POST to record."""
    command = [
        str(venv_bin / "lull"),
        "simulate",
        "--url",
        stack.ports.url(stack.ports.ingest, "/webhook"),
        "--app-secret",
        APP_SECRET,
        "--users",
        str(users),
        "--messages-per-user",
        str(messages),
        "--gap-ms",
        str(GAP_MS),
        "--user-prefix",
        prefix,
        "--seed",
        "16",
        "--record",
        str(record),
        "--json",
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def finish(process: subprocess.Popen[bytes]) -> str:
    """Wait for a simulate run; its summary line. Fails unless every POST got 200."""
    out, _ = process.communicate(timeout=SIMULATE_TIMEOUT_S)
    text = out.decode(errors="replace").strip()
    if process.returncode != 0:
        raise AssertionError(f"lull simulate exited {process.returncode}: {text}")
    return text.splitlines()[-1]


def bursts(record: Path) -> list[Burst]:
    """The bursts a simulate run sent, from its --record file."""
    texts: dict[str, list[str]] = defaultdict(list)
    for line in record.read_text(encoding="utf-8").splitlines():
        post = json.loads(line)
        assert post["status"] == 200, post
        texts[post["user_id"]].extend(post["texts"])
    return [Burst(user, tuple(sent)) for user, sent in sorted(texts.items())]


def replies(stack: Stack) -> dict[str, list[str]]:
    """Texts the fake Graph API accepted, by recipient (Messenger's Send API shape)."""
    by_user: dict[str, list[str]] = defaultdict(list)
    for sent in get_json(stack.ports.url(stack.ports.fake_graph, "/_sent")):
        payload = sent["payload"]
        text = payload.get("message", {}).get("text")
        if text is not None:
            by_user[payload["recipient"]["id"]].append(text)
    return by_user


def wait_for_replies(stack: Stack, sent: list[Burst], timeout_s: float) -> float:
    """Wait until a reply holds every message of every burst; the monotonic time the first
    reply was seen."""
    first_seen: list[float] = []

    def every_message_answered() -> None:
        got = replies(stack)
        if not first_seen and any(got.get(burst.user_id) for burst in sent):
            first_seen.append(time.monotonic())
        verdict = judge(sent, got)
        if verdict.lost:
            raise NotYet(f"{verdict.lost} of {verdict.messages} messages not answered yet")

    wait_for(every_message_answered, "a reply to every message", timeout_s)
    return first_seen[0]


def judge(sent: list[Burst], got: dict[str, list[str]]) -> Verdict:
    """Count each burst's messages in its user's replies: lost, answered twice, split."""
    lost = duplicates = 0
    split = []
    for burst in sent:
        answers = got.get(burst.user_id, [])
        answered = Counter(line for answer in answers for line in answer.split("\n"))
        typed = Counter(burst.texts)
        lost += sum((typed - answered).values())
        duplicates += sum((answered - typed).values())
        if len(answers) > 1:
            split.append(burst.user_id)
    messages = sum(len(burst.texts) for burst in sent)
    return Verdict(len(sent), messages, lost, duplicates, split)
