"""Jobs and emails leave only after commit, through a real RQ worker and a real SMTP server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from redis import Redis
from rq import Queue
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from tests.conftest import Mailbox
from web.db import normalise_url, utcnow
from web.http import database
from web.outbox import OutboxMessage, enqueue_job, queue_email
from web.queueing import queue_name
from web.tenancy import current_collective_id
from workers.context import job
from workers.jobs.system import reconcile_outbox


def _queued_ids(app: Flask, redis: Redis, name: str = "email") -> list[str]:
    settings = app.extensions["chorus.settings"]
    return Queue(queue_name(settings, name), connection=redis).get_job_ids()


def _new_session(app: Flask) -> Session:
    from web.outbox import attach_dispatcher

    s = database(app).new_session()
    attach_dispatcher(s, app.extensions["chorus.dispatcher"])
    return s


def _queue_test_email(s: Session, to: str = "reader@example.org") -> OutboxMessage:
    return queue_email(
        s,
        to=to,
        subject="Hello from the outbox",
        text_body="Plain words.",
        html_body="<p>Plain words.</p>",
    )


def test_email_is_not_enqueued_before_commit_nor_after_rollback(
    app: Flask, db_connection: object, redis: Redis
) -> None:
    with app.app_context():
        s = _new_session(app)
        row = _queue_test_email(s)
        assert _queued_ids(app, redis) == []  # flushed, not yet committed
        s.rollback()
        assert _queued_ids(app, redis) == []
        assert s.get(OutboxMessage, row.id) is None
        s.close()


def test_committed_email_is_sent_by_a_real_worker_with_text_and_html(
    app: Flask, db_connection: object, redis: Redis, mailbox: Mailbox, work: object
) -> None:
    with app.app_context():
        s = _new_session(app)
        row = _queue_test_email(s, to="reader@example.org")
        s.commit()
        [drain] = _queued_ids(app, redis)
        assert drain.startswith("email-drain-")  # emails share a batched drain
        work()  # type: ignore[operator]
        s.expire_all()
        assert s.get(OutboxMessage, row.id).done_at is not None
        s.close()
    [msg] = mailbox.to("reader@example.org")
    assert msg["Subject"] == "Hello from the outbox"
    with app.app_context():
        s = _new_session(app)
        sent = s.get(OutboxMessage, row.id)
        assert sent is not None
        assert set(sent.payload) == {"to", "subject", "message_id"}  # no body, no live link
        s.close()
    assert msg.get_body(preferencelist=("plain",)).get_content().strip() == "Plain words."
    assert "<p>Plain words.</p>" in msg.get_body(preferencelist=("html",)).get_content()


def test_running_an_email_job_twice_sends_once(
    app: Flask, db_connection: object, redis: Redis, mailbox: Mailbox
) -> None:
    from workers.jobs.email import send_outbox_email

    with app.app_context():
        s = _new_session(app)
        row = _queue_test_email(s, to="once@example.org")
        s.commit()
        s.close()
    send_outbox_email(row.id)
    send_outbox_email(row.id)
    assert len(mailbox.to("once@example.org")) == 1


def test_reconciler_re_enqueues_committed_rows_that_redis_lost(
    app: Flask, db_connection: object, redis: Redis, mailbox: Mailbox, work: object
) -> None:
    with app.app_context():
        s = _new_session(app)
        _queue_test_email(s, to="lost@example.org")
        s.commit()
        s.close()
    # Redis restarts without the queue: the job is gone, the row is still owed.
    settings = app.extensions["chorus.settings"]
    queue = Queue(queue_name(settings, "email"), connection=redis)
    for job_id in queue.get_job_ids():
        redis.delete(f"rq:job:{job_id}")
    queue.empty()
    time.sleep(1.1)  # older than OUTBOX_RECONCILE_AFTER_SECONDS (1 s in tests)
    assert reconcile_outbox() == 1
    assert reconcile_outbox() == 0  # its job is queued now: nothing more to do
    work()  # type: ignore[operator]
    assert len(mailbox.to("lost@example.org")) == 1
    assert reconcile_outbox() == 0


def test_smtp_permanent_refusal_marks_the_row_failed_with_the_servers_answer(
    app: Flask, db_connection: object, redis: Redis, mailbox: Mailbox
) -> None:
    from workers.jobs.email import send_outbox_email

    with app.app_context():
        s = _new_session(app)
        mailbox.answers["nobody@example.org"] = "550 5.1.1 No such mailbox here"
        row = _queue_test_email(s, to="nobody@example.org")
        s.commit()
    send_outbox_email(row.id)
    with app.app_context():
        s.expire_all()
        stored = s.get(OutboxMessage, row.id)
        assert stored.failed_at is not None
        assert stored.done_at is None
        assert "No such mailbox here" in (stored.last_error or "")
        s.close()
    assert mailbox.to("nobody@example.org") == []


def test_smtp_temporary_refusal_raises_for_a_retry(
    app: Flask, db_connection: object, redis: Redis, mailbox: Mailbox
) -> None:
    from web.mail import TransientMailError
    from workers.jobs.email import send_outbox_email

    with app.app_context():
        s = _new_session(app)
        mailbox.answers["busy@example.org"] = "451 4.3.0 Try again later"
        row = _queue_test_email(s, to="busy@example.org")
        s.commit()
    with pytest.raises(TransientMailError):
        send_outbox_email(row.id)
    del mailbox.answers["busy@example.org"]
    send_outbox_email(row.id)  # the retry succeeds
    assert len(mailbox.to("busy@example.org")) == 1
    with app.app_context():
        s.expire_all()
        stored = s.get(OutboxMessage, row.id)
        assert stored.done_at is not None
        assert stored.attempts == 2
        s.close()


def test_smtp_outage_raises_so_rq_retries_and_keeps_the_row_owed(
    app: Flask, db_connection: object, redis: Redis
) -> None:
    from web.mail import TransientMailError
    from workers.context import use_app
    from workers.jobs.email import send_outbox_email

    closed_port = app.extensions["chorus.settings"].with_overrides(smtp_port=1)
    broken = Flask(__name__)
    broken.extensions.update(app.extensions)
    broken.extensions["chorus.settings"] = closed_port
    broken.jinja_loader = app.jinja_loader
    with app.app_context():
        s = _new_session(app)
        row = _queue_test_email(s, to="later@example.org")
        s.commit()
    use_app(broken)
    try:
        with pytest.raises(TransientMailError):
            send_outbox_email(row.id)
    finally:
        use_app(app)
    with app.app_context():
        s.expire_all()
        stored = s.get(OutboxMessage, row.id)
        assert stored.done_at is None
        assert stored.failed_at is None
        assert stored.attempts == 1
        assert "TransientMailError" in (stored.last_error or "")
        s.close()


@pytest.mark.live
def test_forking_worker_process_sends_committed_email(
    live_app_factory: object, live_db: str, mailbox: Mailbox, redis_url: str
) -> None:
    """`python -m workers --burst` in its own process: builds the app once, forks a work
    horse per job (which disposes the inherited pool), and sends through real SMTP."""
    app: Flask = live_app_factory()  # type: ignore[operator]
    settings = app.extensions["chorus.settings"]
    with app.app_context():
        s = _new_session(app)
        rows = [_queue_test_email(s, to=f"fork{i}@example.org") for i in range(3)]
        s.commit()
        s.close()
    env = {
        **os.environ,
        "CHORUS_ENV": "test",
        "SECRET_KEY": settings.secret_key,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "SMTP_HOST": settings.smtp_host,
        "SMTP_PORT": str(settings.smtp_port),
        "RQ_QUEUE_PREFIX": settings.rq_queue_prefix,
        "CHORUS_INSTANCE_PATH": settings.instance_path,
    }
    result = subprocess.run(
        [sys.executable, "-m", "workers", "--burst"],
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for i in range(3):
        assert len(mailbox.to(f"fork{i}@example.org")) == 1
    engine = create_engine(normalise_url(live_db))
    with engine.connect() as conn:
        done = conn.scalar(
            text(
                "select count(*) from outbox_messages where done_at is not null and id = any(:ids)"
            ),
            {"ids": [r.id for r in rows]},
        )
    engine.dispose()
    assert done == 3
    database(app).engine.dispose()


def test_cron_enqueues_each_slot_once_even_with_two_schedulers(
    app: Flask, db_connection: object, redis: Redis
) -> None:
    from workers.cron import SCHEDULE, tick

    settings = app.extensions["chorus.settings"]
    now = 1_900_000_020.0
    first = tick(redis, settings, now=now)
    second = tick(redis, settings, now=now + 1)  # a second scheduler in the same slot
    assert sorted(first) == sorted(e.name for e in SCHEDULE)
    assert second == []
    default = Queue(queue_name(settings, "default"), connection=redis)
    assert len(default.get_job_ids()) == len(SCHEDULE)
    assert "reconcile-outbox" in tick(redis, settings, now=now + 61)


def test_finished_outbox_rows_are_purged_after_a_week(
    app: Flask, db_connection: object, redis: Redis
) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from web.db import utcnow
    from workers.jobs.system import purge_expired

    with app.app_context():
        s = _new_session(app)
        old = _queue_test_email(s, to="old@example.org")
        fresh = _queue_test_email(s, to="fresh@example.org")
        owed = _queue_test_email(s, to="owed@example.org")
        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_([old.id, owed.id]))
            .values(created_at=utcnow() - timedelta(days=8))
        )
        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_([old.id, fresh.id]))
            .values(done_at=utcnow())
        )
        s.commit()
        s.close()
    purge_expired()
    with app.app_context():
        s = _new_session(app)
        remaining = {r.id for r in s.query(OutboxMessage).all()}
        s.close()
    assert old.id not in remaining
    assert {fresh.id, owed.id} <= remaining  # recent, or still owed: kept


RAN: list[tuple[int | None, dict[str, object]]] = []


@job
def record_run(session: Session, row: OutboxMessage) -> None:
    """A job for the test below: remembers the tenant it ran under and its payload."""
    RAN.append((current_collective_id(session), dict(row.payload)))


def test_jobs_leave_only_after_commit_and_run_once_in_their_collective(
    app: Flask, db_connection: object, redis: Redis, work: object
) -> None:
    RAN.clear()
    with app.app_context():
        s = _new_session(app)
        dropped = enqueue_job(
            s, "tests.test_outbox_and_jobs.record_run", payload={"n": 1}, collective_id=7
        )
        s.rollback()
        assert _queued_ids(app, redis, "default") == []
        row = enqueue_job(
            s, "tests.test_outbox_and_jobs.record_run", payload={"n": 2}, collective_id=7
        )
        assert _queued_ids(app, redis, "default") == []  # flushed, not committed
        s.commit()
        assert _queued_ids(app, redis, "default") == [f"outbox-{row.id}"]
        s.close()
    work()  # type: ignore[operator]
    record_run(row.id)  # a second delivery of the same job does nothing
    assert RAN == [(7, {"n": 2})]
    assert dropped.id != row.id
    with app.app_context():
        s = _new_session(app)
        assert s.get(OutboxMessage, row.id).done_at is not None
        s.close()


# --- the email drain: batches over one connection --------------------------------------


def test_a_backlog_drains_in_batches_each_email_once(
    app: Flask, db_connection: object, redis: Redis, mailbox: Mailbox, work: object
) -> None:
    from workers.jobs.email import DRAIN_BATCH

    total = DRAIN_BATCH * 2 + 7
    with app.app_context():
        s = _new_session(app)
        ids = [_queue_test_email(s, to=f"crowd{i}@example.org").id for i in range(total)]
        s.commit()
        # Hundreds of commits' worth of email, one drain job.
        assert len(_queued_ids(app, redis)) == 1
        work()  # type: ignore[operator]
        s.expire_all()
        rows = s.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(ids))).all()
        assert all(r.done_at is not None and r.attempts == 1 for r in rows)
        s.close()
    for i in range(total):
        assert len(mailbox.to(f"crowd{i}@example.org")) == 1
    assert _queued_ids(app, redis) == []


def test_one_refusal_in_a_batch_affects_only_its_own_email(
    app: Flask, db_connection: object, redis: Redis, mailbox: Mailbox, work: object
) -> None:
    mailbox.answers["full@example.org"] = "452 4.2.2 Mailbox full, try later"
    mailbox.answers["gone@example.org"] = "550 5.1.1 No such user"
    with app.app_context():
        s = _new_session(app)
        rows = {
            to: _queue_test_email(s, to=to).id
            for to in ("a@example.org", "full@example.org", "gone@example.org", "b@example.org")
        }
        s.commit()
        work()  # type: ignore[operator]
        s.expire_all()
        stored = {to: s.get(OutboxMessage, row_id) for to, row_id in rows.items()}
        assert stored["a@example.org"].done_at is not None
        assert stored["b@example.org"].done_at is not None
        gone = stored["gone@example.org"]
        assert gone.failed_at is not None
        assert "No such user" in (gone.last_error or "")
        full = stored["full@example.org"]
        assert full.done_at is None
        assert full.failed_at is None
        assert full.available_at is not None  # tried again later, not in a tight loop
        assert "Mailbox full" in (full.last_error or "")
        s.close()
    assert len(mailbox.to("a@example.org")) == 1
    assert len(mailbox.to("b@example.org")) == 1
    assert mailbox.to("gone@example.org") == []


def test_a_deferred_email_is_sent_once_its_time_comes(
    app: Flask, db_connection: object, redis: Redis, mailbox: Mailbox, work: object
) -> None:
    mailbox.answers["later2@example.org"] = "421 4.7.0 Slow down"
    with app.app_context():
        s = _new_session(app)
        row = _queue_test_email(s, to="later2@example.org")
        s.commit()
        work()  # type: ignore[operator]
        s.expire_all()
        assert s.get(OutboxMessage, row.id).available_at is not None
        del mailbox.answers["later2@example.org"]
        # Not yet due: the reconciler does not hurry it.
        time.sleep(1.1)
        assert reconcile_outbox() == 0
        s.get(OutboxMessage, row.id).available_at = utcnow() - timedelta(seconds=1)
        s.commit()
        assert reconcile_outbox() == 1
        work()  # type: ignore[operator]
        s.expire_all()
        stored = s.get(OutboxMessage, row.id)
        assert stored.done_at is not None
        assert stored.attempts == 2
        s.close()
    assert len(mailbox.to("later2@example.org")) == 1


def test_a_long_drain_hands_over_to_a_new_one_and_sends_nothing_twice(
    app: Flask,
    db_connection: object,
    redis: Redis,
    mailbox: Mailbox,
    work: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rq.job import Job

    from web.queueing import DRAIN_TIMEOUT
    from workers.jobs import email

    monkeypatch.setattr(email, "DRAIN_SECONDS", 0)  # hand over after every full batch
    total = email.DRAIN_BATCH * 2 + 3
    with app.app_context():
        s = _new_session(app)
        ids = [_queue_test_email(s, to=f"relay{i}@example.org").id for i in range(total)]
        s.commit()
        [first] = _queued_ids(app, redis)
        # Well inside RQ's timeout, which must outlast a drain's turn plus one batch.
        assert Job.fetch(first, connection=redis).timeout == DRAIN_TIMEOUT
        work()  # type: ignore[operator]
        s.expire_all()
        rows = s.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(ids))).all()
        assert all(r.done_at is not None and r.attempts == 1 for r in rows)
        s.close()
    assert all(len(mailbox.to(f"relay{i}@example.org")) == 1 for i in range(total))
