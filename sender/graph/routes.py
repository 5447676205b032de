"""Where each platform's Send API calls go: the Graph host, and the node that sends.

What Meta documents (the "Instagram" section of docs/sending.md names the pages):
- Messenger: `POST graph.facebook.com/{version}/{page-id}/messages`, with a Page token.
- WhatsApp Cloud API: `POST graph.facebook.com/{version}/{phone-number-id}/messages`.
- Instagram API with Facebook Login: `POST graph.facebook.com/{version}/{page-id}/messages`
  (the docs' example: `/me/messages`) with the Page token of the Facebook Page linked to the
  Instagram account. Instagram webhooks name the Instagram account, not that Page, so lull
  sends to `/me/messages`, and the Page token says which Page it is.
- Instagram API with Instagram Login: `POST graph.instagram.com/{version}/{ig-id}/messages`
  with an Instagram User access token.

One route per platform from the environment; an account of the accounts file may have its
own (sender/accounts/sends.py: AccountRoutes answers `GraphRoutes.route(platform,
account_id)` with the account's), without a change to the callers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import urlsplit

InstagramLogin = Literal["facebook", "instagram"]
INSTAGRAM_LOGINS: Final = ("facebook", "instagram")
FACEBOOK_GRAPH: Final = "https://graph.facebook.com"
INSTAGRAM_GRAPH: Final = "https://graph.instagram.com"
# The node that stands for "whoever the token belongs to" in a Graph API path.
ME: Final = "me"


@dataclass(frozen=True, slots=True)
class Route:
    """One send's destination: the API base URL and the node in `/{version}/{node}/messages`."""

    base_url: str
    node: str


@dataclass(frozen=True, slots=True)
class GraphRoutes:
    """The base URL of each platform's sends, and how Instagram accounts log in."""

    bases: Mapping[str, str]
    """Platform → base URL; a platform missing here uses `default_base`."""
    default_base: str = FACEBOOK_GRAPH
    instagram_login: InstagramLogin = "facebook"

    def route(self, platform: str, account_id: str) -> Route:
        """Where a send of `account_id` on `platform` goes."""
        base_url = self.bases.get(platform, self.default_base)
        via_page = platform == "instagram" and self.instagram_login == "facebook"
        return Route(base_url, ME if via_page else account_id)


def host_problem(platform: str, base_url: str, instagram_login: InstagramLogin) -> str | None:
    """Why Meta would refuse sends of `platform` at `base_url`, None when it would not.

    Only Meta's own two hosts are judged: a proxy or a fake may stand in for either."""
    host = urlsplit(base_url).hostname
    instagram_host = urlsplit(INSTAGRAM_GRAPH).hostname
    facebook_host = urlsplit(FACEBOOK_GRAPH).hostname
    if platform == "instagram" and instagram_login == "instagram" and host == facebook_host:
        return (
            f"Instagram API with Instagram Login is served by {INSTAGRAM_GRAPH}, "
            f"not {FACEBOOK_GRAPH}"
        )
    if host == instagram_host and not (platform == "instagram" and instagram_login == "instagram"):
        who = (
            "Instagram with LULL_INSTAGRAM_LOGIN=facebook" if platform == "instagram" else platform
        )
        return f"{INSTAGRAM_GRAPH} serves only the Instagram API with Instagram Login, not {who}"
    return None
