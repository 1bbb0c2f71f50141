"""`python -m web.launch run|migrate`: what `make run` and the compose `migrate` do.

run:     start embedded PostgreSQL and Redis under instance/ (unless DATABASE_URL /
         REDIS_URL are set), apply migrations, load the demo data once, then run the web
         server, one RQ worker (with its scheduler), the recurring-job scheduler and the
         SMTP listener for replies to delivered letters in the foreground. Ctrl-C stops
         everything it started; data stays in instance/.
migrate: apply migrations with MIGRATION_DATABASE_URL (or DATABASE_URL) and give the
         app role the password written in DATABASE_URL.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from web.embedded import EmbeddedPostgres, EmbeddedRedis, migrate
from web.settings import Settings, SettingsError


def _fail(message: str) -> None:
    print(f"chorus: {message}", file=sys.stderr)
    raise SystemExit(2)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_until_serving(port: int, children: list[subprocess.Popen[bytes]]) -> bool:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def cmd_migrate() -> None:
    app_url = os.environ.get("DATABASE_URL", "").strip()
    admin_url = os.environ.get("MIGRATION_DATABASE_URL", "").strip() or app_url
    if not admin_url:
        _fail("set MIGRATION_DATABASE_URL (the tables' owner) or DATABASE_URL to migrate.")
    migrate(admin_url, app_url or None)
    print("chorus: migrations applied")


def cmd_run() -> None:
    env = dict(os.environ)
    env.setdefault("CHORUS_ENV", "development")
    instance = Path(env.get("CHORUS_INSTANCE_PATH", "instance")).resolve()
    env["CHORUS_INSTANCE_PATH"] = str(instance)
    try:
        early = Settings.from_env(env)  # fail early, naming the variable
    except SettingsError as exc:
        _fail(str(exc))
    if not _port_is_free(early.web_port):
        _fail(
            f"port {early.web_port} is already in use; stop what uses it "
            "or set PORT to another port."
        )
    if not _port_is_free(early.inbound_smtp_port):
        _fail(
            f"port {early.inbound_smtp_port} (the listener for replies to delivered letters) "
            "is already in use; stop what uses it or set INBOUND_SMTP_PORT to another port."
        )

    started: list[EmbeddedPostgres | EmbeddedRedis] = []
    children: list[subprocess.Popen[bytes]] = []

    def shutdown(*_: object) -> None:
        for child in children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 20
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(child.pid, signal.SIGKILL)
        for child in children:
            # Anything a child left behind in its session (a work horse, a scheduler).
            _signal_group(child.pid, signal.SIGTERM)
        for server in reversed(started):
            server.stop()

    try:
        if not env.get("DATABASE_URL"):
            print("chorus: starting embedded PostgreSQL in", instance / "postgres")
            pg = EmbeddedPostgres(instance / "postgres").start()
            started.append(pg)
            pg.ensure_database("chorus")
            env["DATABASE_URL"] = pg.app_url("chorus")
            env["MIGRATION_DATABASE_URL"] = pg.admin_url("chorus")
        if not env.get("REDIS_URL"):
            print("chorus: starting embedded Redis in", instance / "redis")
            redis = EmbeddedRedis(instance / "redis").start()
            started.append(redis)
            env["REDIS_URL"] = redis.url
        admin_url = env.get("MIGRATION_DATABASE_URL") or env["DATABASE_URL"]
        migrate(admin_url, env["DATABASE_URL"])
        print("chorus: migrations applied")

        settings = Settings.from_env(env)
        from web.app import create_app
        from web.demo import seed_demo

        app = create_app(settings)
        email, password, created = seed_demo(app)
        app.extensions["chorus.db"].engine.dispose()

        port = settings.web_port
        python = sys.executable
        commands = {
            "web": [
                python,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--worker-class",
                "gthread",
                "--threads",
                "4",
                "--access-logfile",
                "-",
                "web.app:create_app()",
            ],
            "worker": [python, "-m", "workers"],
            "cron": [python, "-m", "workers.cron"],
            "inbound": [python, "-m", "workers.inbound"],
        }
        for args in commands.values():
            # Own sessions: Ctrl-C reaches only this launcher, which then stops each child
            # gracefully (SIGTERM: gunicorn finishes its requests, RQ its current job).
            children.append(subprocess.Popen(args, env=env, start_new_session=True))
        # Explicit handlers: a launcher started in the background inherits SIGINT ignored.
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)
        if not _wait_until_serving(port, children):
            _fail("the web server did not start; see the messages above.")
        mail = (
            f"SMTP {settings.smtp_host}:{settings.smtp_port}"
            if settings.smtp_configured
            else f"{settings.base_url}/dev/mail (no SMTP configured)"
        )
        print(
            "\n"
            "  Chorus is running.\n"
            f"  Open:        {settings.base_url}/\n"
            f"  Demo owner:  {email}  ({'created now' if created else 'from an earlier run'})\n"
            f"  Password:    {password}  (kept in {instance / 'demo-password.txt'})\n"
            f"  Email:       {mail}\n"
            f"  Replies:     SMTP {settings.inbound_smtp_host}:{settings.inbound_smtp_port}"
            f" (reply+…@{settings.inbound_domain})\n"
            "  Stop:        Ctrl-C\n",
            flush=True,
        )
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        dead = [name for name, c in zip(commands, children, strict=True) if c.poll() is not None]
        print(f"chorus: {', '.join(dead)} stopped; shutting down", file=sys.stderr)
    except KeyboardInterrupt:
        print("\nchorus: stopping", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        shutdown()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m web.launch",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["run", "migrate"])
    args = parser.parse_args(argv)
    if args.command == "run":
        cmd_run()
    else:
        cmd_migrate()


if __name__ == "__main__":
    main()
