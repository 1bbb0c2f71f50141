"""Rate limits on signing, checked in one Redis round trip.

The signing form is the one route that must take hundreds of submissions a second, so
its limits do not go through Flask-Limiter (one Redis call per limit, and more for its
headers). Every limit here is a fixed window: a counter per IP address (or campaign) per
window, incremented and checked by one Lua script for all the windows at once. The
limits themselves are settings (SIGN_LIMIT_PER_IP, SIGN_LIMIT_PER_CAMPAIGN) in the
`limits` notation, and RATELIMIT_ENABLED turns them off with the others.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache

from limits import parse_many
from redis import Redis
from werkzeug.exceptions import TooManyRequests

from web.settings import Settings

_SCRIPT = """
local tripped = 0
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('EXPIRE', key, tonumber(ARGV[2 * i])) end
  if tripped == 0 and n > tonumber(ARGV[2 * i - 1]) then tripped = i end
end
return tripped
"""


class SignRateLimited(TooManyRequests):
    """Too many signatures from one address or for one campaign; `retry_after` is the
    number of seconds until the window that refused this one ends."""

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.retry_after = retry_after


@dataclass(frozen=True)
class Window:
    amount: int
    seconds: int


@cache
def _windows(spec: str) -> tuple[Window, ...]:
    return tuple(Window(item.amount, item.get_expiry()) for item in parse_many(spec))


def check_sign_limits(
    redis: Redis, settings: Settings, ip: str, campaign_key: str, now: float | None = None
) -> None:
    """Count this submission against every window; raise SignRateLimited if any is full."""
    if not settings.ratelimit_enabled:
        return
    now = time.time() if now is None else now
    keys: list[str] = []
    args: list[int] = []
    windows: list[Window] = []
    prefix = f"{settings.rq_queue_prefix}sign-limit"
    for scope, subject, spec in (
        ("ip", ip, settings.sign_limit_per_ip),
        ("campaign", campaign_key, settings.sign_limit_per_campaign),
    ):
        for window in _windows(spec):
            slot = int(now // window.seconds)
            keys.append(f"{prefix}:{scope}:{subject}:{window.seconds}:{slot}")
            args += [window.amount, window.seconds]
            windows.append(window)
    tripped = int(redis.eval(_SCRIPT, len(keys), *keys, *args))
    if tripped:
        window = windows[tripped - 1]
        raise SignRateLimited(max(1, int(window.seconds - now % window.seconds)))
