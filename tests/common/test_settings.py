"""Common settings: a bad Redis URL stops the service without printing its password."""

from __future__ import annotations

import pytest

from lull.common.env import ConfigError
from lull.common.settings import CommonSettings


@pytest.mark.parametrize(
    "url",
    ["http://:hunter2@redis:6379/0", "redis://:hunter2@redis:99999999/0", "redis//:hunter2@x"],
)
def test_bad_redis_url_is_refused_without_its_password(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        CommonSettings.from_env({"LULL_REDIS_URL": url})
    assert "LULL_REDIS_URL" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_good_redis_urls_are_kept() -> None:
    for url in ("redis://:pw@127.0.0.1:6379/0", "rediss://h:6380", "unix:///tmp/r.sock"):
        assert CommonSettings.from_env({"LULL_REDIS_URL": url}).redis_url == url
