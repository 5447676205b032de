"""The request every bench sends: a 1 KB signed Messenger text webhook."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson

from lull.common.signing import sign

BODY_BYTES = 1024
SECRET = "bench-app-secret"
VERIFY_TOKEN = "bench-verify-token"
PATH = "/webhook"
_TEXT_FIXTURE = Path(__file__).parent.parent / "fixtures" / "messenger" / "text.json"


@dataclass(frozen=True)
class Payload:
    """One body and its X-Hub-Signature-256."""

    body: bytes
    signature: str

    def http_request(self, host: str, port: int) -> bytes:
        """The raw HTTP/1.1 keep-alive POST, sent as-is by the Python generator."""
        head = (
            f"POST {PATH} HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(self.body)}\r\n"
            f"X-Hub-Signature-256: {self.signature}\r\n"
            "\r\n"
        )
        return head.encode() + self.body


def messenger_payload(secret: str = SECRET) -> Payload:
    """The text.json fixture with its text padded so the body is exactly BODY_BYTES."""
    envelope = orjson.loads(_TEXT_FIXTURE.read_bytes())
    message = envelope["entry"][0]["messaging"][0]["message"]
    message["text"] = ""
    missing = BODY_BYTES - len(orjson.dumps(envelope))
    message["text"] = ("lorem ipsum " * (missing // 12 + 1))[:missing]
    body = orjson.dumps(envelope)
    assert len(body) == BODY_BYTES, len(body)
    return Payload(body, sign(secret, body))
