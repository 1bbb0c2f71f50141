"""`make bench` / `python -m bench [count|sign|suite] ...`: benchmarks with their own runner.

Each benchmark starts its own embedded PostgreSQL and Redis in a temporary folder,
migrates, seeds a published campaign, runs gunicorn (4 sync workers) on loopback, and
drives it with `wrk` (Debian's package; installed with apt-get if missing). Results
belong in docs/benchmarks.md with the command that produced them.

  count   GET /<collective>/<campaign>/count.json          (issue: Signing §10)
  sign    POST /<collective>/<campaign>/sign, unique emails (issue: Signing §10)
  suite   the whole test suite, wall time
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

ROOT = Path(__file__).resolve().parents[1]


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
def stack(signatures: int) -> Iterator[tuple[str, str, str]]:
    """Servers + app + seed. Yields (base_url, collective_slug, campaign_slug)."""
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
            # The raw path is measured; production keeps per-IP limits on.
            "RATELIMIT_ENABLED": "false",
            "CHORUS_INSTANCE_PATH": str(folder / "instance"),
            "ARGON2_TIME_COST": "1",
            "ARGON2_MEMORY_KIB": "8192",
        }
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
                "--workers",
                "4",
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


def bench_sign(seconds: int) -> None:
    from itsdangerous import URLSafeTimedSerializer

    with stack(0) as (base, collective, campaign):
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
        out = _wrk(["-t2", "-c16", f"-d{seconds}s", "--latency", "-s", str(script), page])
        print(out)
        rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        print(
            f"sign POSTs: {rate.group(1) if rate else '?'} requests/s "
            f"(wrk -t2 -c16 -d{seconds}s), {errors.group(1) if errors else 0} not 2xx/3xx"
        )


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("which", nargs="?", default="count", choices=["count", "sign", "suite"])
    parser.add_argument("--signatures", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args(argv)
    if args.which == "count":
        bench_count(args.signatures, args.seconds)
    elif args.which == "sign":
        bench_sign(args.seconds)
    else:
        bench_suite()


if __name__ == "__main__":
    main()
