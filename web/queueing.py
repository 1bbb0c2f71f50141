"""RQ queues as the web side sees them: names, connections and the outbox dispatcher."""

from __future__ import annotations

from redis import Redis
from rq import Queue, Retry

from web.settings import Settings

# Transient failures (SMTP 4xx, a dropped connection) are retried with backoff.
RETRY_INTERVALS = [10, 60, 300]


def redis_from_settings(settings: Settings) -> Redis:
    return Redis.from_url(settings.redis_url)


def queue_name(settings: Settings, name: str) -> str:
    return f"{settings.rq_queue_prefix}{name}"


class RQDispatcher:
    """Pushes committed outbox rows onto RQ, one job per row, id `outbox-<id>`."""

    def __init__(self, settings: Settings, connection: Redis) -> None:
        self.settings = settings
        self.connection = connection

    def queue(self, name: str) -> Queue:
        return Queue(queue_name(self.settings, name), connection=self.connection)

    def dispatch(self, rows: list[tuple[int, str, str]]) -> None:
        for outbox_id, queue, func in rows:
            self.queue(queue).enqueue(
                func,
                outbox_id,
                job_id=f"outbox-{outbox_id}",
                retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
                failure_ttl=7 * 24 * 3600,
                result_ttl=3600,
            )
