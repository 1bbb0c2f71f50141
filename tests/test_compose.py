"""docker-compose.yml: its shape, and (where the docker compose CLI exists) that it validates.

These tests read only files at the repository root; they need no database, Redis or app.
`docker compose config` needs no Docker engine, only the compose CLI plugin.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SERVICES = {"postgres", "redis", "mailpit", "migrate", "web", "worker", "cron", "inbound"}
TEST_SECRET_KEY = "compose-test-secret-key-that-is-long-enough-0123456789"


def _service_keys(text: str) -> set[str]:
    """Names of the services: two-space-indented keys inside the top-level `services:`."""
    names: set[str] = set()
    in_services = False
    for line in text.splitlines():
        if re.match(r"^\S", line):  # any top-level key ends (or starts) the block
            in_services = line.rstrip() == "services:"
            continue
        match = re.match(r"^  ([A-Za-z0-9_.-]+):$", line.rstrip())
        if in_services and match:
            names.add(match.group(1))
    return names


def test_compose_file_declares_the_services_and_their_settings() -> None:
    text = COMPOSE_FILE.read_text()

    assert _service_keys(text) >= SERVICES
    assert re.search(r"^\s+image: postgres:16\s*$", text, re.MULTILINE)
    assert re.search(r"^\s+image: redis:7\s*$", text, re.MULTILINE)
    # RQ keeps its queues in Redis: it must persist them and never evict them.
    assert "appendonly yes" in text
    assert "noeviction" in text
    # The secret has no default, so a deployment cannot start with a known one.
    assert "${SECRET_KEY:?" in text
    assert "dockerfile: infra/Dockerfile" in text


def _compose_unavailable_reason() -> str | None:
    if shutil.which("docker") is None:
        return "docker compose CLI is not installed on this machine (no `docker` on PATH)"
    try:
        result = subprocess.run(
            ["docker", "compose", "version"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker compose CLI is not installed on this machine ({exc})"
    if result.returncode != 0:
        return (
            "docker compose CLI is not installed on this machine "
            "(`docker compose version` failed: the compose plugin is missing)"
        )
    return None


@pytest.fixture(scope="module")
def compose_cli() -> None:
    reason = _compose_unavailable_reason()
    if reason:
        pytest.skip(reason)


def _compose_config(
    env: dict[str, str], tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    # An empty --env-file stops compose reading a developer's own .env beside the file,
    # which could otherwise supply SECRET_KEY and hide the failure tested below.
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    return subprocess.run(
        [
            "docker",
            "compose",
            "-f",
            str(COMPOSE_FILE),
            "--env-file",
            str(empty_env_file),
            "config",
            *args,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _env_without_secret() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SECRET_KEY", None)
    return env


@pytest.mark.usefixtures("compose_cli")
def test_compose_config_validates_with_secret_key(tmp_path: Path) -> None:
    env = _env_without_secret() | {"SECRET_KEY": TEST_SECRET_KEY}
    result = _compose_config(env, tmp_path, "--quiet")
    assert result.returncode == 0, result.stderr


@pytest.mark.usefixtures("compose_cli")
def test_compose_config_refuses_to_run_without_secret_key(tmp_path: Path) -> None:
    result = _compose_config(_env_without_secret(), tmp_path, "--quiet")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr + result.stdout


@pytest.mark.usefixtures("compose_cli")
def test_compose_config_wires_startup_order_and_environment(tmp_path: Path) -> None:
    env = _env_without_secret() | {"SECRET_KEY": TEST_SECRET_KEY}
    result = _compose_config(env, tmp_path, "--format", "json")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]

    assert set(services) == SERVICES
    migrate = services["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    # Migrations run as the owner; the app itself logs in as chorus_app.
    assert migrate["environment"]["MIGRATION_DATABASE_URL"].startswith("postgresql://chorus:")
    for name in ("web", "worker", "cron", "inbound"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"
    for name in ("migrate", "web", "worker", "cron", "inbound"):
        service_env = services[name]["environment"]
        assert services[name]["build"]["dockerfile"] == "infra/Dockerfile"
        assert service_env["CHORUS_ENV"] == "production"
        assert service_env["SECRET_KEY"] == TEST_SECRET_KEY
        assert service_env["DATABASE_URL"].startswith("postgresql://chorus_app:")
        assert service_env["REDIS_URL"] == "redis://redis:6379/0"
        assert service_env["SMTP_HOST"] == "mailpit"
    assert "MIGRATION_DATABASE_URL" not in services["web"]["environment"]
    assert services["worker"]["command"] == ["python", "-m", "workers"]
    assert services["cron"]["command"] == ["python", "-m", "workers.cron"]
    assert any(port["target"] == 8000 for port in services["web"]["ports"])
    # Replies to delivered letters: the SMTP listener, reachable from outside.
    assert services["inbound"]["command"] == ["python", "-m", "workers.inbound"]
    assert services["inbound"]["environment"]["INBOUND_SMTP_HOST"] == "0.0.0.0"  # noqa: S104 - in its container
    assert any(port["target"] == 2525 for port in services["inbound"]["ports"])
