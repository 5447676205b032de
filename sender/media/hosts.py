"""The allowlist of hosts lull fetches media from: nothing else is ever fetched.

WhatsApp's `GET /{media-id}` answers a URL on lookaside.fbsbx.com; Messenger and Instagram
webhooks carry URLs on Meta's CDNs (lookaside.fbsbx.com, scontent-*.xx.fbcdn.net,
*.cdninstagram.com). A rule is `host[:port]`; a leading dot (`.fbcdn.net`) matches the
domain and every subdomain; without a port it matches the scheme's default port only, so
`127.0.0.1` never lets in another service on the same machine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

HOSTS_FORMAT: Final = "a comma-separated list of host[:port], a leading dot for subdomains"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class HostRule:
    """One allowed host (or domain, `suffix`), on one port or the default ones."""

    host: str
    port: int | None = None
    suffix: bool = False

    def allows(self, host: str, port: int, default_port: bool) -> bool:
        """Whether a URL on host:port (default_port: the scheme's own) is let through."""
        if self.port is None and not default_port:
            return False
        if self.port is not None and self.port != port:
            return False
        if self.suffix:
            return host == self.host or host.endswith("." + self.host)
        return host == self.host

    def __str__(self) -> str:
        name = ("." if self.suffix else "") + self.host
        return name if self.port is None else f"{name}:{self.port}"


def parse_hosts(value: str) -> tuple[HostRule, ...]:
    """LULL_MEDIA_HOSTS; ValueError for an empty list or a malformed entry."""
    rules = tuple(_rule(item.strip()) for item in value.split(",") if item.strip())
    if not rules:
        raise ValueError(value)
    return rules


def _rule(item: str) -> HostRule:
    suffix = item.startswith(".")
    name = item[1:] if suffix else item
    host, _, port = name.lower().partition(":")
    if not host or any(c in host for c in "/@?#* ") or (port and not port.isdigit()):
        raise ValueError(item)
    number = int(port) if port else None
    if number is not None and not 0 < number < 65536:
        raise ValueError(item)
    return HostRule(host, number, suffix)


def rule_of_base(base_url: str) -> HostRule:
    """The exact host:port of a configured Graph base URL."""
    parts = urlsplit(base_url)
    return HostRule((parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS[parts.scheme])


DEFAULT_MEDIA_HOSTS: Final = parse_hosts(".fbsbx.com,.fbcdn.net,.cdninstagram.com")


@dataclass(frozen=True, slots=True)
class Allowlist:
    """The rules, asked about whole URLs."""

    rules: tuple[HostRule, ...]

    @classmethod
    def of(cls, rules: Iterable[HostRule], graph_bases: Iterable[str]) -> Allowlist:
        """LULL_MEDIA_HOSTS plus the exact host of every configured Graph base."""
        return cls((*rules, *(rule_of_base(base) for base in sorted(set(graph_bases)))))

    def allows(self, url: str) -> bool:
        """An http(s) URL, without credentials, on an allowed host."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return False
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
            return False
        default = _DEFAULT_PORTS[parts.scheme]
        port_or_default = default if port is None else port
        host = parts.hostname.lower()
        return any(r.allows(host, port_or_default, port_or_default == default) for r in self.rules)
