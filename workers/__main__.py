"""`python -m workers [--burst] [queue ...]`: build the app once, then work.

The worker forks a work horse per job; the horse disposes the parent's database pool
before running (CKAN's habit), so no connection is shared across processes. The RQ
scheduler runs inside the worker for jobs scheduled with retries and delays.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from rq import Queue, Worker

from web.queueing import queue_name
from workers.context import get_app, use_app

# pdf-priority before pdf: Supporter plans' renders go first (web/billing/plans.py).
DEFAULT_QUEUES = ("email", "default", "pdf-priority", "pdf")


class ChorusWorker(Worker):
    def main_work_horse(self, *args: Any, **kwargs: Any) -> None:
        app = get_app()
        app.extensions["chorus.db"].dispose_after_fork()
        super().main_work_horse(*args, **kwargs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__)
    parser.add_argument("queues", nargs="*", default=list(DEFAULT_QUEUES))
    parser.add_argument("--burst", action="store_true", help="stop when the queues are empty")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    app = get_app()
    use_app(app)
    settings = app.extensions["chorus.settings"]
    redis = app.extensions["chorus.redis"]
    queues = [Queue(queue_name(settings, q), connection=redis) for q in args.queues]
    worker = ChorusWorker(queues, connection=redis)
    worker.work(with_scheduler=True, burst=args.burst)


if __name__ == "__main__":
    main()
