"""`make bench` / `python -m bench [count|sign|suite] ...`: benchmarks with their own runner.

Each benchmark starts its own embedded PostgreSQL and Redis in a temporary folder,
migrates, seeds a published campaign, runs gunicorn (3 workers of 4 threads, as infra/Dockerfile
does; BENCH_GUNICORN overrides the options) on loopback, and drives it with `wrk`
(Debian's package; installed with apt-get if missing). Results belong in
docs/benchmarks.md with the command that produced them.

  count   GET /<collective>/<campaign>/count.json          (issue: Signing §10)
  sign    POST /<collective>/<campaign>/sign, unique emails (issue: Signing §10)
  suite   the whole test suite, wall time
  pdf     PDF letters of 1,000, 10,000 and 100,000 signatories (issue: Formal PDF letters §7;
          see bench/pdf.py; --signatures N renders only that size)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# infra/Dockerfile's server options; the access log is written (and thrown away) as there.
GUNICORN = "--workers 3 --worker-class gthread --threads 4 --access-logfile /dev/null"


def _ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is needed: apt-get install wrk")
    return found


@contextmanager
def stack(
    signatures: int, extra_env: dict[str, str] | None = None, env_out: dict[str, str] | None = None
) -> Iterator[tuple[str, str, str]]:
    """Servers + app + seed. Yields (base_url, collective_slug, campaign_slug); fills
    `env_out` with the environment the servers run with (for workers)."""
    from web.app import create_app
    from web.embedded import EmbeddedPostgres, EmbeddedRedis, free_port, migrate
    from web.settings import Settings

    folder = Path(tempfile.mkdtemp(prefix="chorus-bench-"))
    folder.chmod(0o755)
    pg = EmbeddedPostgres(folder / "pg").start()
    redis = EmbeddedRedis(folder / "redis").start(persistent=False)
    gunicorn: subprocess.Popen[bytes] | None = None
    try:
        pg.ensure_database("bench")
        migrate(pg.admin_url("bench"), pg.app_url("bench"))
        port = free_port()
        env = {
            **os.environ,
            "CHORUS_ENV": "test",
            "SECRET_KEY": "bench-secret-key-bench-secret-key-0123456789",
            "DATABASE_URL": pg.app_url("bench"),
            "REDIS_URL": redis.url,
            "BASE_URL": f"http://127.0.0.1:{port}",
            "COOKIE_SECURE": "false",
            # Rate limits stay on (each request pays for them); the load generator, all
            # on 127.0.0.1, gets its own allowance instead of the 5-a-minute per IP.
            "RATELIMIT_ENABLED": "true",
            "SIGN_LIMIT_PER_IP": "1000000 per minute",
            **(extra_env or {}),
            "CHORUS_INSTANCE_PATH": str(folder / "instance"),
            "ARGON2_TIME_COST": "1",
            "ARGON2_MEMORY_KIB": "8192",
        }
        if env_out is not None:
            env_out.update(env, BENCH_ADMIN_URL=pg.admin_url("bench"))
        app = create_app(Settings.from_env(env))
        collective_slug, campaign_slug = _seed(app, pg.admin_url("bench"), signatures)
        app.extensions["chorus.db"].engine.dispose()
        gunicorn = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{port}",
                *os.environ.get("BENCH_GUNICORN", GUNICORN).split(),
                "--log-level",
                "warning",
                "web.app:create_app()",
            ],
            env=env,
            cwd=ROOT,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=2).read()
                break
            except OSError:
                time.sleep(0.2)
        yield base, collective_slug, campaign_slug
    finally:
        if gunicorn is not None:
            gunicorn.terminate()
            gunicorn.wait(timeout=30)
        redis.stop()
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _seed(app: object, admin_url: str, signatures: int) -> tuple[str, str]:
    from sqlalchemy import create_engine, text

    from web.accounts.models import User
    from web.campaigns import services as campaigns
    from web.collectives.models import Collective, Membership, Role
    from web.db import normalise_url, utcnow
    from web.recipients.models import Recipient
    from web.signatures.services import reconcile_counts
    from web.tenancy import set_current_collective, system_scope

    with app.app_context(), app.extensions["chorus.db"].session_scope() as s:  # type: ignore[attr-defined]
        user = User(
            email="bench@example.org",
            display_name="Bench",
            password_hash="x",
            email_verified_at=utcnow(),
        )
        collective = Collective(name="Bench", slug="bench", contact_address="Bench")
        s.add_all([user, collective])
        s.flush()
        set_current_collective(s, collective.id)
        member = Membership(collective_id=collective.id, user_id=user.id, role=Role.OWNER)
        s.add(member)
        with system_scope(s):
            recipient = Recipient(key="bench", kind="ministerial_department", name="Dept")
            s.add(recipient)
            s.flush()
        campaign = campaigns.create_campaign(s, member, kind="open_letter", title="B", slug="b")
        campaigns.update_settings(
            s,
            member,
            campaign,
            title="B",
            slug="b",
            recipient_id=recipient.id,
            addressee_name="",
            addressee_role="Secretary of State",
            audience_style="minister",
            signature_target=None,
            closes_on=None,
        )
        campaigns.save_letter(
            s,
            member,
            campaign,
            subject="S",
            summary="S.",
            body_markdown="B.",
            asks=["A"],
            evidence_links=[],
        )
        version = campaigns.publish(s, member, collective, campaign)
        ids = (collective.id, campaign.id, version.id)
    if signatures:
        engine = create_engine(normalise_url(admin_url))
        with engine.begin() as conn:
            conn.execute(
                text(
                    "insert into signatures (collective_id, campaign_id, letter_version_id, name,"
                    " email, email_canonical, status, method, secret_hash, verified_at)"
                    " select :c, :k, :v, 'Seed ' || g, 'seed' || g || '@example.org',"
                    " 'seed' || g || '@example.org', 'verified', 'online', '\\x00'::bytea, now()"
                    " from generate_series(1, :n) g"
                ),
                {"c": ids[0], "k": ids[1], "v": ids[2], "n": signatures},
            )
        engine.dispose()
        with app.app_context(), app.extensions["chorus.db"].session_scope() as s:  # type: ignore[attr-defined]
            set_current_collective(s, ids[0])
            reconcile_counts(s, ids[1])
    return "bench", "b"


def _wrk(args: list[str]) -> str:
    result = subprocess.run([_ensure_wrk(), *args], capture_output=True, text=True, check=True)
    return result.stdout


def bench_count(signatures: int, seconds: int) -> None:
    with stack(signatures) as (base, collective, campaign):
        url = f"{base}/{collective}/{campaign}/count.json"
        print(urllib.request.urlopen(url).read().decode())
        out = _wrk(["-t2", "-c32", f"-d{seconds}s", "--latency", url])
        print(out)
        rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
        print(
            f"count.json with {signatures:,} verified signatures: "
            f"{rate.group(1) if rate else '?'} requests/s (wrk -t2 -c32 -d{seconds}s)"
        )


class _CountingSMTP:
    """aiosmtpd handler: counts what it accepts, keeps nothing."""

    def __init__(self) -> None:
        self.received = 0
        self.recipients: set[str] = set()

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:  # noqa: N802
        self.received += 1
        self.recipients.update(envelope.rcpt_tos)
        return "250 OK"


def _latency(out: str, pct: str) -> str:
    found = re.search(rf"^\s+{pct}%\s+(\S+)", out, flags=re.MULTILINE)
    return found.group(1) if found else "?"


def bench_sign(seconds: int) -> None:
    """Sign for `seconds` with wrk, check the database, then time the confirmation
    emails' drain by two workers against a loopback SMTP server."""
    from aiosmtpd.controller import Controller
    from sqlalchemy import create_engine, text

    from web.db import normalise_url
    from web.embedded import free_port

    smtp = _CountingSMTP()
    smtp_port = free_port()
    controller = Controller(smtp, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    env: dict[str, str] = {}
    extra = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port)}
    try:
        with stack(0, extra, env) as (base, collective, campaign):
            out = _sign_load(base, collective, campaign, seconds)
            print(out)
            rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
            done = re.search(r"(\d+) requests in", out)
            errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            socket = re.search(r"Socket errors: (.*)", out)
            time.sleep(2)  # requests in flight when wrk stopped still commit
            engine = create_engine(normalise_url(env["BENCH_ADMIN_URL"]))
            with engine.connect() as conn:
                rows, distinct, pending = conn.execute(
                    text(
                        "select count(*), count(distinct email_canonical),"
                        " count(*) filter (where status = 'pending') from signatures"
                    )
                ).one()
                owed = conn.execute(
                    text("select count(*) from outbox_messages where kind = 'email'")
                ).scalar_one()
            print(
                f"sign POSTs: {rate.group(1) if rate else '?'} requests/s over {seconds} s "
                f"(wrk -t2 -c16), p50 {_latency(out, '50')}, p99 {_latency(out, '99')}, "
                f"{errors.group(1) if errors else 0} not 2xx/3xx"
                f"{', socket errors: ' + socket.group(1) if socket else ''}"
            )
            print(
                f"database: {rows} signatures for {done.group(1) if done else '?'} requests "
                f"wrk completed, {distinct} distinct emails, {pending} pending; "
                f"{owed} confirmation emails owed"
            )
            drained, elapsed = _drain(env, engine, int(owed))
            engine.dispose()
            print(
                f"email drain: {drained} confirmation emails in {elapsed:.1f} s = "
                f"{drained / elapsed if elapsed else 0:.0f} emails/s with 2 workers; "
                f"the SMTP server accepted {smtp.received} for {len(smtp.recipients)} "
                "distinct recipients"
            )
    finally:
        controller.stop()


def _sign_load(base: str, collective: str, campaign: str, seconds: int) -> str:
    from itsdangerous import URLSafeTimedSerializer

    page = f"{base}/{collective}/{campaign}"
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    html = opener.open(page).read().decode()
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert csrf, "no CSRF token on the campaign page"
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    started = URLSafeTimedSerializer(
        "bench-secret-key-bench-secret-key-0123456789", salt="sign-form"
    ).dumps(int(time.time()) - 60)
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(
        SIGN_LUA
        % {
            "path": f"/{collective}/{campaign}/sign",
            "cookie": cookie,
            "body": urllib.parse.urlencode(
                {
                    "csrf_token": csrf.group(1),
                    "started": started,
                    "name": "Load Test",
                    "postcode": "",
                    "statement": "",
                    "website": "",
                }
            ),
        }
    )
    return _wrk(["-t2", "-c16", f"-d{seconds}s", "--latency", "-s", str(script), page])


def _drain(env: dict[str, str], engine: object, owed: int) -> tuple[int, float]:
    """Start two workers on the email queue; time them until no email is owed."""
    from sqlalchemy import text

    query = text(
        "select count(*) from outbox_messages"
        " where kind = 'email' and done_at is null and failed_at is null"
    )
    logs = [Path(tempfile.gettempdir(), f"chorus-bench-worker-{i}.log").open("w") for i in (1, 2)]  # noqa: SIM115 - closed below
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "workers", "email"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for log in logs
    ]
    start = time.monotonic()
    try:
        while time.monotonic() - start < 600:
            with engine.connect() as conn:  # type: ignore[attr-defined]
                left = conn.execute(query).scalar_one()
            if left == 0:
                break
            time.sleep(0.1)
        elapsed = time.monotonic() - start
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=30)
        for log in logs:
            log.close()
    return owed - int(left), elapsed


SIGN_LUA = """
local counter = 0
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function request()
  counter = counter + 1
  local email = "load" .. tid .. "x" .. counter .. "%%40example.org"
  local body = "%(body)s&email=" .. email
  return wrk.format("POST", "%(path)s", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Cookie"] = "%(cookie)s",
  }, body)
end
"""


def bench_suite() -> None:
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], check=False, cwd=ROOT
    )
    print(f"test suite: exit {result.returncode}, {time.monotonic() - start:.1f} s wall")


def machine_speed() -> float:
    """CPU seconds this machine takes for a fixed pure-Python loop (best of three): the
    machine's speed varies from hour to hour, so every result is printed beside it."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        sum(i * i for i in range(10**7))
        best = min(best, time.process_time() - start)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "which", nargs="?", default="count", choices=["count", "sign", "suite", "pdf"]
    )
    parser.add_argument("--signatures", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=None, help="default: count 10, sign 60")
    args = parser.parse_args(argv)
    print(f"machine speed: 10^7 squares summed in {machine_speed():.2f} s of CPU (lower is faster)")
    if args.which == "count":
        bench_count(args.signatures, args.seconds or 10)
    elif args.which == "sign":
        bench_sign(args.seconds or 60)
    elif args.which == "pdf":
        from bench.pdf import SIZES, bench_pdf

        sizes = SIZES if "--signatures" not in (argv or sys.argv) else (args.signatures,)
        bench_pdf(sizes)
    else:
        bench_suite()


if __name__ == "__main__":
    main()
