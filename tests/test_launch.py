"""`make run` end to end: embedded servers, migrations, demo data, web + worker + cron,
Ctrl-C stops everything, and the data survives the next start."""

from __future__ import annotations

import http.cookiejar
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import pytest

from web.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]


def _start(instance: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {"DATABASE_URL", "REDIS_URL", "MIGRATION_DATABASE_URL", "SMTP_HOST", "CHORUS_ENV"}
    }
    env.update(
        {
            "CHORUS_INSTANCE_PATH": str(instance),
            "PORT": str(port),
            "INBOUND_SMTP_PORT": str(free_port()),
            "BASE_URL": f"http://127.0.0.1:{port}",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "web.launch", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = ""
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        output += line
        if "Stop:" in line:
            break
    assert "Chorus is running" in output, output[-4000:]
    return proc, output


def _stop(proc: subprocess.Popen[str]) -> tuple[str, list[int]]:
    """Ctrl-C, as a terminal sends it; returns the output and every process started."""
    started = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    os.killpg(proc.pid, signal.SIGINT)
    rest, _ = proc.communicate(timeout=90)
    return rest, started


def _login(port: int, email: str, password: str) -> str:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = f"http://127.0.0.1:{port}"
    page = opener.open(f"{base}/login", timeout=10).read().decode()
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert token
    data = urllib.parse.urlencode(
        {"csrf_token": token.group(1), "email": email, "password": password}
    ).encode()
    response = opener.open(f"{base}/login", data=data, timeout=10)
    return response.read().decode()


@pytest.mark.live
def test_make_run_starts_the_demo_stops_on_ctrl_c_and_keeps_its_data() -> None:
    # A short, traversable folder like a checkout's instance/: PostgreSQL runs as its own
    # system user here (we are root) and its socket path must stay short.
    base = Path(tempfile.mkdtemp(prefix="chorus-run-"))
    base.chmod(0o755)
    instance = base / "instance"
    port = free_port()
    proc, output = _start(instance, port)
    try:
        email = re.search(r"Demo owner:\s+(\S+)", output)
        password = re.search(r"Password:\s+(\S+)", output)
        assert email, output
        assert password, output
        assert "created now" in output
        page = _login(port, email.group(1), password.group(1))
        assert "Demo Collective" in page
    finally:
        shutdown_output, started = _stop(proc)
    assert proc.returncode is not None
    assert "Traceback" not in shutdown_output, shutdown_output[-4000:]
    assert len(started) >= 5  # gunicorn + its workers, the RQ worker, cron, redis
    time.sleep(0.5)
    alive = [
        pid
        for pid in started
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]
    assert alive == [], f"still running after Ctrl-C: {alive}"
    # Every process it started has gone: PostgreSQL removed its pid file, Redis its port.
    time.sleep(0.5)
    assert not (instance / "postgres" / "postmaster.pid").exists()
    survivors = subprocess.run(
        ["pgrep", "-f", str(instance)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert survivors == [], f"still running after Ctrl-C: {survivors}"

    proc, output = _start(instance, port)
    try:
        assert "from an earlier run" in output
        assert "Demo Collective" in _login(port, email.group(1), password.group(1))
    finally:
        _stop(proc)
        shutil.rmtree(base, ignore_errors=True)
