"""`python -m workers.cron`: the recurring-job scheduler.

Each schedule entry runs once per interval slot. The slot is claimed in Redis with
SET NX before enqueueing, so two schedulers running at once enqueue each slot once.
The jobs themselves are idempotent, so a slot that is enqueued but lost does no harm:
the next slot repeats the work.
"""

from __future__ import annotations

import argparse
import logging
import signal
import time
from dataclasses import dataclass
from typing import Any

from redis import Redis
from rq import Queue

from web.queueing import queue_name
from web.settings import Settings
from workers.context import get_app

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recurring:
    name: str
    func: str
    every_seconds: int
    queue: str = "default"
    timeout: int = 180  # RQ's default job timeout


SCHEDULE = (
    Recurring("reconcile-outbox", "workers.jobs.system.reconcile_outbox", 60),
    Recurring("purge-expired", "workers.jobs.system.purge_expired", 3600),
    Recurring("reconcile-counts", "workers.jobs.signatures.reconcile_signature_counts", 300),
    Recurring("group-statements", "workers.jobs.statements.sweep_statements", 60),
    Recurring(
        "anonymise-signers",
        "workers.jobs.retention.anonymise_concluded_signers",
        86400,
        timeout=3600,  # commits per batch of 5,000; a killed run resumes the next night
    ),
    Recurring("flag-trending", "workers.jobs.signatures.flag_trending", 300),
    Recurring("fail-stale-renders", "workers.jobs.pdf.fail_stale_renders", 300),
    Recurring("expire-grace", "workers.jobs.billing.expire_grace_periods", 86400),
    Recurring("meeting-reminders", "workers.jobs.meetings.send_meeting_reminders", 900),
    Recurring("send-chasers", "workers.jobs.chasers.send_chasers", 3600),
    # Scheduled deliveries and retries after a temporary refusal (web/delivery/sending.py).
    Recurring("sweep-deliveries", "workers.jobs.delivery.sweep_deliveries", 60),
)


def tick(redis: Redis, settings: Settings, now: float | None = None) -> list[str]:
    """Enqueue every entry whose current slot nobody has claimed yet."""
    now = time.time() if now is None else now
    enqueued = []
    for entry in SCHEDULE:
        slot = int(now // entry.every_seconds)
        key = f"{settings.rq_queue_prefix}chorus:cron:{entry.name}:{slot}"
        if redis.set(key, "1", nx=True, ex=entry.every_seconds * 2):
            Queue(queue_name(settings, entry.queue), connection=redis).enqueue(
                entry.func,
                job_id=f"cron-{entry.name}-{slot}",
                job_timeout=entry.timeout,
                result_ttl=600,
                failure_ttl=86400,
            )
            enqueued.append(entry.name)
    return enqueued


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workers.cron", description=__doc__)
    parser.add_argument("--once", action="store_true", help="run one tick and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s cron %(levelname)s %(message)s")
    app = get_app()
    settings = app.extensions["chorus.settings"]
    redis = app.extensions["chorus.redis"]
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("scheduler started: %s", ", ".join(e.name for e in SCHEDULE))
    while not stopping:
        try:
            for name in tick(redis, settings):
                log.info("enqueued %s", name)
        except Exception:
            log.exception("scheduler tick failed; trying again shortly")
        if args.once:
            break
        for _ in range(10):
            if stopping:
                break
            time.sleep(0.5)


if __name__ == "__main__":
    main()
