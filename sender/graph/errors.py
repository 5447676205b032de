"""Graph API failures, sorted into what the sender should do: wait, retry, or give up.

Meta advises deciding on `error.code`, not on the HTTP status or the message text,
so the code wins; the status only decides for codes this table does not know.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Final, Literal

import orjson

from lull.common.outside_text import cut
from lull.sender.retry_after import retry_after_ms

ErrorKind = Literal["throttle", "temporary", "permanent", "window"]

# What each error code Meta documents for a send means, and what the sender does with it.
# Sources: Messenger Platform "Common Error Codes" and the Send API error codes
# (developers.facebook.com/docs/messenger-platform/error-codes), WhatsApp Cloud API
# "WhatsApp error codes" (developers.facebook.com/documentation/business-messaging/whatsapp/
# support/error-codes), Graph API "Rate Limits" (developers.facebook.com/docs/graph-api/
# overview/rate-limiting). docs/sending.md's error table lists the same rows; a test keeps
# them equal.
# throttle: Meta asks this account (or user pair) to slow down; retried after the wait Meta
#   asks for, without using up LULL_SEND_MAX_ATTEMPTS.
# temporary: Meta's own trouble; retried with backoff up to LULL_SEND_MAX_ATTEMPTS.
# permanent: retrying the same request cannot help; dead letter at once.
# window: Meta's 24-hour window has closed for this user (lull's clock and Meta's differ, or
#   the user's last message was not seen by lull): the batch finishes `window_closed`, as if
#   lull had seen it first (sender/reply_window.py); neither retried nor dead-lettered.
KNOWN_CODES: Final[Mapping[int, tuple[ErrorKind, str]]] = MappingProxyType(
    {
        # Rate limits of the Graph API platform and of the business use cases.
        4: ("throttle", "app request limit reached"),
        17: ("throttle", "user request limit reached"),
        32: ("throttle", "Page request limit reached"),
        613: ("throttle", "calls to this API have exceeded the rate limit"),
        80001: ("throttle", "Pages business use case rate limit"),
        80002: ("throttle", "Instagram business use case rate limit"),
        80006: ("throttle", "Messenger business use case rate limit"),
        80007: ("throttle", "WhatsApp Business Account rate limit"),
        # WhatsApp Cloud API throttles.
        130429: ("throttle", "Cloud API throughput (messages per second) reached"),
        131048: ("throttle", "spam rate limit hit: too many messages blocked or flagged"),
        131056: ("throttle", "too many messages to the same user (pair rate limit)"),
        # Meta's own trouble.
        1: ("temporary", "unknown error (API Unknown)"),
        2: ("temporary", "service temporarily unavailable (API Service)"),
        1200: ("temporary", "Messenger: temporary send message failure"),
        131000: ("temporary", "something went wrong: failed for an unknown reason"),
        131016: ("temporary", "a service is temporarily unavailable"),
        131057: ("temporary", "WhatsApp Business Account in maintenance mode"),
        133004: ("temporary", "server temporarily unavailable"),
        # Retrying the same request cannot help.
        0: ("permanent", "could not authenticate the app user (AuthException)"),
        3: ("permanent", "capability or permission missing (API Method)"),
        10: ("permanent", "permission denied; Messenger: sent outside the allowed window"),
        100: ("permanent", "invalid parameter"),
        190: ("permanent", "access token invalid or expired"),
        368: ("permanent", "temporarily blocked for policy violations"),
        551: ("permanent", "Messenger: this person isn't available right now"),
        131026: ("permanent", "message undeliverable to this user"),
        131047: ("window", "more than 24 hours since the user last wrote (re-engagement)"),
        131049: ("permanent", "Meta chose not to deliver (per-user marketing limit)"),
        131051: ("permanent", "unsupported message type"),
    }
)
# Code 10 is any permission error; with this subcode, Messenger's and Instagram's "This
# message is sent outside of allowed window" (Send API error codes, developers.facebook.com/
# docs/messenger-platform/reference/send-api/error-codes).
WINDOW_SUBCODES: Final[Mapping[int, int]] = MappingProxyType({10: 2018278})
# 200-299: API permission errors (WhatsApp "Authorization errors"; Messenger uses 200 for a
# user who cannot be messaged).
PERMISSION_CODES: Final = range(200, 300)

# Usage headers whose `estimated_time_to_regain_access` (minutes) says when to come back.
USAGE_HEADERS: Final = ("x-business-use-case-usage", "x-app-usage", "x-page-usage")


class GraphError(Exception):
    """A Send API call that did not deliver; `kind` is throttle, temporary or permanent."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        subcode: int | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message
        self.status = status
        self.code = code
        self.subcode = subcode
        self.retry_after_ms = retry_after_ms

    def __str__(self) -> str:
        facts = [f"status {self.status}" if self.status is not None else "no response"]
        if self.code is not None:
            facts.append(f"code {self.code}" + (f"/{self.subcode}" if self.subcode else ""))
        if self.retry_after_ms is not None:
            facts.append(f"retry after {self.retry_after_ms} ms")
        return f"{self.kind}: {self.message} ({', '.join(facts)})"


class MissingToken(GraphError):
    """No access token is configured for the account: permanent until the config changes."""

    def __init__(self, account_id: str) -> None:
        super().__init__(
            "permanent", f"no access token for account {account_id!r} in LULL_ACCESS_TOKENS"
        )
        self.account_id = account_id


def classify(status: int | None, body: object, headers: Mapping[str, str]) -> GraphError:
    """Turn a failed response (status None: no response at all) into a typed GraphError."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {}
    code = _int(error.get("code"))
    subcode = _int(error.get("error_subcode"))
    kind: ErrorKind = "window" if _outside_window(code, subcode) else _kind(status, code)
    retry_after_ms = None if kind in ("permanent", "window") else retry_after_ms_from(headers)
    return GraphError(
        kind,
        _message(status, error),
        status=status,
        code=code,
        subcode=subcode,
        retry_after_ms=retry_after_ms,
    )


def _outside_window(code: int | None, subcode: int | None) -> bool:
    return code is not None and subcode is not None and WINDOW_SUBCODES.get(code) == subcode


def _kind(status: int | None, code: int | None) -> ErrorKind:
    known = KNOWN_CODES.get(code) if code is not None else None
    if known is not None:
        return known[0]
    if code in PERMISSION_CODES:
        return "permanent"
    if status == 429:
        return "throttle"
    if status is not None and 400 <= status < 500:
        return "permanent"
    # No answer, a 5xx, or an answer that is not the API's (a proxy, a redirect): try again.
    return "temporary"


def _message(status: int | None, error: Mapping[str, object]) -> str:
    message = error.get("message")
    text = message if isinstance(message, str) and message else f"HTTP {status}"
    # WhatsApp puts the actionable explanation in error_data.details.
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    if isinstance(details, str) and details and details not in text:
        text = f"{text}: {details}"
    # Logged on every retry and kept in a dead letter: an answer (or a proxy's page) of
    # megabytes must not be either.
    return cut(text)


def retry_after_ms_from(headers: Mapping[str, str], *, now_s: float | None = None) -> int | None:
    """The longest wait the response's headers ask for, in ms; None when they ask for none."""
    lowered = {name.lower(): value for name, value in headers.items()}
    waits_ms = [retry_after_ms(lowered.get("retry-after"), now_s=now_s)]
    for name in USAGE_HEADERS:
        waits_ms.extend(minutes * 60_000 for minutes in _regain_minutes(lowered.get(name)))
    positive = [wait for wait in waits_ms if wait is not None and wait > 0]
    return max(positive) if positive else None


def _regain_minutes(value: str | None) -> Iterator[int]:
    """Every estimated_time_to_regain_access in a usage header, however it is nested."""
    if not value:
        return
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return
    # X-App-Usage is one flat object; X-Business-Use-Case-Usage maps a business id to a list
    # of objects, one per use-case type.
    stack: list[object] = [parsed]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            minutes = _int(item.get("estimated_time_to_regain_access"))
            if minutes is not None:
                yield minutes
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None
