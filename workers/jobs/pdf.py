"""Rendering PDFs on the `pdf` queue, and failing renders whose worker vanished.

`render_document` serves the outbox row `request_render` wrote (payload: render_id). It
runs under `@job`: the row's collective is the tenant, and one session commits the
document and the finished render together. Two things commit earlier, each in a short
transaction of its own so the progress page sees them while the render runs: the start
of an attempt (status "rendering", attempts + 1) and the engine's progress reports.

What cannot be lost or repeated:
- A render already done or failed does nothing (idempotent); so does one that is gone.
- Same inputs, same document: `make_document` reuses a stored PDF of equal inputs_hash.
- A failure the engine explains (timeout, memory, a broken letter) fails the render with
  its message, shown to the organiser; RQ does not retry it.
- A job that dies (killed at the RQ timeout, a crash, a lost worker) is retried by RQ and
  re-enqueued by the outbox reconciler. Each try counts an attempt; after MAX_ATTEMPTS
  the render is failed with a message instead of being tried forever.
- `fail_stale_renders` (every 5 minutes) fails renders that no worker started within an
  hour, or whose worker has been silent for 15 minutes, so no progress page spins
  forever; the organiser is told to start again. A job that turns up later for one of
  them finds it failed and does nothing. We fail rather than re-queue here because the
  outbox reconciler already re-queues lost jobs: a render still stuck after that has met
  a problem that retrying would only repeat.
"""

from __future__ import annotations

import logging
import time

from flask import Flask
from sqlalchemy import text
from sqlalchemy.orm import Session

from web.outbox import OutboxMessage
from web.pdf import services
from web.pdf.engine import RenderError
from web.pdf.models import PdfRender
from web.tenancy import set_current_collective
from workers.context import PermanentJobError, get_app, job, settings, system_job

log = logging.getLogger(__name__)

PROGRESS_EVERY_SECONDS = 0.5  # at most two progress writes a second; the last always


class ProgressWriter:
    """The engine's progress callback: writes done/total in short transactions of its own,
    so the progress page sees them while the job's own transaction is still open."""

    def __init__(self, app: Flask, collective_id: int, render_id: int) -> None:
        self.app = app
        self.collective_id = collective_id
        self.render_id = render_id
        self.last_write = 0.0

    def _session(self) -> Session:
        session = self.app.extensions["chorus.db"].new_session()
        set_current_collective(session, self.collective_id)
        # Never wait long on a lock: progress is a courtesy, and a wait on the job's own
        # transaction would never end.
        session.execute(text("SET LOCAL lock_timeout = '5s'"))
        return session

    def start(self) -> int | None:
        """Mark the render as rendering; the attempt number, or None if nothing to do."""
        session = self._session()
        try:
            attempt = services.start_attempt(session, self.render_id)
            session.commit()
            return attempt
        finally:
            session.close()

    def note_retry(self) -> None:
        """Tell the progress page that this attempt broke and RQ will try again."""
        session = self._session()
        try:
            services.note_retry(session, self.render_id)
            session.commit()
        except Exception:
            session.rollback()
            log.warning("could not note the retry of render %s", self.render_id, exc_info=True)
        finally:
            session.close()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last_write < PROGRESS_EVERY_SECONDS:
            return
        self.last_write = now
        session = self._session()
        try:
            services.record_progress(session, self.render_id, done, total)
            session.commit()
        except Exception:  # progress is a courtesy: never let it break the render
            session.rollback()
            log.warning("could not record progress of render %s", self.render_id, exc_info=True)
        finally:
            session.close()


@job
def render_document(session: Session, row: OutboxMessage) -> None:
    """Make the PDF of one render (see the module docstring). Commits once (through
    @job), apart from progress. Idempotent. Sends no email."""
    try:
        render_id = int(row.payload["render_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentJobError(f"This job names no render: {row.payload!r}") from exc
    render = session.get(PdfRender, render_id)
    if render is None or render.is_finished:
        return
    writer = ProgressWriter(get_app(), render.collective_id, render.id)
    attempt = writer.start()
    if attempt is None:  # finished (or failed by the sweep) since we looked
        return
    if attempt > services.MAX_ATTEMPTS:
        message = (
            f"The PDF could not be made after {services.MAX_ATTEMPTS} attempts: each took "
            "too long or stopped. Please try again later; if it keeps failing, tell us."
        )
        services.fail_render(session, render, message)
        raise PermanentJobError(message)
    started = time.monotonic()
    try:
        document = services.make_document(session, settings(), render, progress=writer)
    except (RenderError, services.PdfError) as exc:
        services.fail_render(session, render, str(exc))
        raise PermanentJobError(str(exc)) from exc
    except Exception:
        # Not the letter's fault (a lost connection, a bug): RQ retries. Roll back first
        # (as @job would), so no lock of ours can hold up the note.
        session.rollback()
        writer.note_retry()
        raise
    log.info(
        "render %s: document %s (%s, %d pages, %d bytes) in %.1f s",
        render.id,
        document.id,
        "reused" if render.is_cached else "rendered",
        document.pages,
        document.size,
        time.monotonic() - started,
    )


@system_job
def fail_stale_renders(session: Session) -> int:
    """Fail renders whose worker never started or went silent (see the module docstring).
    Idempotent; commits once."""
    failed = services.fail_stale_renders(session)
    if failed:
        log.warning("failed %d stale PDF renders", failed)
    return failed
