"""RQ queues as the web side sees them: names, connections and the outbox dispatcher.

Jobs (`enqueue_job`) get one RQ job per outbox row, id `outbox-<id>`. Emails do not:
one email per RQ job is far too slow for a viral campaign (RQ's forking worker runs a
few dozen jobs a second), so committed emails only make sure that one *drain* job is
queued. The drain (`workers.jobs.email.drain_emails`) sends every due email in batches
over one SMTP connection. A Redis flag holding the queued drain's job id keeps the
signing path to one cheap `SET NX` per commit; the drain clears the flag when it starts,
so an email committed after that queues the next drain.
"""

from __future__ import annotations

import secrets

from redis import Redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from web.settings import Settings

# Transient failures (SMTP 4xx, a dropped connection) are retried with backoff.
RETRY_INTERVALS = [10, 60, 300]
EMAIL_QUEUE = "email"
DRAIN_JOB = "workers.jobs.email.drain_emails"
# Long enough to cover a queue backlog; the reconciler replaces a lost drain sooner.
DRAIN_FLAG_SECONDS = 600
# A drain hands over after 60 s (workers/jobs/email.py); a batch of 200 over a slow SMTP
# server can take minutes more. Killing a drain mid-batch would send that batch twice.
DRAIN_TIMEOUT = 900
ALIVE = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
# Per-queue RQ job timeouts (others keep RQ's 180 s). A PDF render may run for the engine's
# timeout (web/pdf/services.RENDER_TIMEOUT) plus building its inputs and storing the PDF.
JOB_TIMEOUTS = {"pdf": 300, "pdf-priority": 300}

# Delete the flag only if it still names this drain: a newer drain's flag stays.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def redis_from_settings(settings: Settings) -> Redis:
    return Redis.from_url(settings.redis_url)


def queue_name(settings: Settings, name: str) -> str:
    return f"{settings.rq_queue_prefix}{name}"


def drain_flag_key(settings: Settings) -> str:
    return f"{settings.rq_queue_prefix}chorus:email-drain"


class RQDispatcher:
    """Pushes committed outbox rows onto RQ: a job per job row, one drain for emails."""

    def __init__(self, settings: Settings, connection: Redis) -> None:
        self.settings = settings
        self.connection = connection

    def queue(self, name: str) -> Queue:
        return Queue(queue_name(self.settings, name), connection=self.connection)

    def dispatch(self, rows: list[tuple[int, str, str]]) -> None:
        emails = False
        for outbox_id, queue, func in rows:
            if queue == EMAIL_QUEUE:
                emails = True
                continue
            self.queue(queue).enqueue(
                func,
                outbox_id,
                job_id=f"outbox-{outbox_id}",
                job_timeout=JOB_TIMEOUTS.get(queue),
                retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
                failure_ttl=7 * 24 * 3600,
                result_ttl=3600,
            )
        if emails:
            self.request_drain()

    def request_drain(self, *, force: bool = False) -> str | None:
        """Queue a drain unless one is already queued (per the flag). With `force` (the
        reconciler), queue one unless the flagged drain is alive in RQ. Returns the new
        drain's job id, or None."""
        key = drain_flag_key(self.settings)
        job_id = f"email-drain-{secrets.token_hex(8)}"
        if force:
            current = self.connection.get(key)
            if current is not None and self._alive(current.decode()):
                return None
            self.connection.set(key, job_id, ex=DRAIN_FLAG_SECONDS)
        elif not self.connection.set(key, job_id, nx=True, ex=DRAIN_FLAG_SECONDS):
            return None
        self.queue(EMAIL_QUEUE).enqueue(
            DRAIN_JOB,
            job_id=job_id,
            job_timeout=DRAIN_TIMEOUT,
            result_ttl=600,
            failure_ttl=7 * 24 * 3600,
        )
        return job_id

    def release_drain(self, job_id: str) -> None:
        """Called by a drain as it starts: emails committed from now on queue a new one."""
        self.connection.eval(_RELEASE, 1, drain_flag_key(self.settings), job_id)

    def _alive(self, job_id: str) -> bool:
        try:
            return Job.fetch(job_id, connection=self.connection).get_status() in ALIVE
        except NoSuchJobError:
            return False
