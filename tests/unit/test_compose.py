"""docker-compose.yml and deploy/, checked without Docker: every path, service, command and
setting the stack refers to must exist in this repository and agree with it.
"""

from __future__ import annotations

import fnmatch
import json
import shlex
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
REDIS_CONF = ROOT / "deploy" / "redis.conf"


def load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "docker-compose.yml must be a mapping"
    return data


COMPOSE = load_compose()
SERVICES: dict[str, dict[str, Any]] = COMPOSE.get("services") or {}
BUILT = sorted(name for name, svc in SERVICES.items() if "build" in svc)


def build_of(service: dict[str, Any]) -> tuple[Path, Path]:
    """(context, Dockerfile) of a service's ``build``, resolved against the compose file."""
    build = service["build"]
    if isinstance(build, str):
        build = {"context": build}
    context = (COMPOSE_FILE.parent / build.get("context", ".")).resolve()
    return context, context / build.get("dockerfile", "Dockerfile")


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {str(key): str(value) for key, value in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """{dependency: condition}; the list form means ``service_started``."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def redis_conf() -> dict[str, str]:
    conf: dict[str, str] = {}
    for line in REDIS_CONF.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            conf[key.lower()] = value.strip()
    return conf


def option(argv: list[str], name: str) -> str:
    assert name in argv, f"{name} missing from {argv}"
    return argv[argv.index(name) + 1]


def test_the_stack_has_its_five_services() -> None:
    assert set(SERVICES) == {"redis", "sandbox", "bizon-sandbox", "worker", "scheduler"}
    assert {"sandbox", "bizon-sandbox", "worker", "scheduler"} <= set(BUILT)
    assert SERVICES["redis"]["image"].split(":")[0] == "redis"
    assert SERVICES["redis"]["image"].split(":")[1].startswith("7")


@pytest.mark.parametrize("name", BUILT)
def test_build_context_and_dockerfile_exist(name: str) -> None:
    context, dockerfile = build_of(SERVICES[name])
    assert context.is_dir(), f"{name}: build context {context} does not exist"
    assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
    assert dockerfile == DOCKERFILE


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_mounted_files_exist(name: str) -> None:
    named = set(COMPOSE.get("volumes") or {})
    for volume in SERVICES[name].get("volumes") or []:
        if isinstance(volume, dict):
            source, kind = str(volume.get("source", "")), volume.get("type", "volume")
        else:
            source = str(volume).split(":", 1)[0]
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        if kind == "bind":
            path = (COMPOSE_FILE.parent / source).resolve()
            assert path.exists(), f"{name} mounts {source}, which does not exist"
            assert path.is_relative_to(ROOT), f"{name} mounts {source} from outside the repo"
        else:
            assert source in named, f"{name} uses volume {source!r}, not declared in volumes:"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_depends_on_names_existing_services(name: str) -> None:
    for dependency, condition in depends_on(SERVICES[name]).items():
        assert dependency in SERVICES, f"{name} depends on unknown service {dependency!r}"
        assert dependency != name
        assert condition in {"service_started", "service_healthy"}
        if condition == "service_healthy":
            assert "healthcheck" in SERVICES[dependency], f"{dependency} has no healthcheck"


def test_worker_waits_for_healthy_redis_and_sandboxes() -> None:
    assert depends_on(SERVICES["worker"]) == {
        "redis": "service_healthy",
        "sandbox": "service_healthy",
        "bizon-sandbox": "service_healthy",
    }
    assert depends_on(SERVICES["scheduler"]).get("redis") == "service_healthy"


@pytest.mark.parametrize("name", BUILT)
def test_command_is_a_registered_billing_command(name: str) -> None:
    argv = command_of(SERVICES[name])
    assert len(argv) >= 2, f"{name}: command must be `<script> <sub-command> ...`, got {argv}"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    program, sub_command, *options = argv
    assert program in scripts, f"{name}: {program!r} is not in [project.scripts] {scripts}"
    assert scripts[program] == "worker.cli:main"

    from typer.testing import CliRunner

    from worker.cli import app, registered_commands

    assert sub_command in registered_commands(), f"`{program} {sub_command}` is not registered"
    # --help stops before the command runs, but only after every option has been parsed:
    # a misspelt option fails here with "No such option".
    result = CliRunner().invoke(app, [sub_command, *options, "--help"])
    assert result.exit_code == 0, f"`{' '.join(argv)}` does not parse:\n{result.output}"


def test_sandbox_listens_where_the_worker_looks() -> None:
    sandbox = command_of(SERVICES["sandbox"])
    assert option(sandbox, "--host") == "0.0.0.0"  # noqa: S104 - inside its container
    port = int(option(sandbox, "--port"))
    healthcheck = " ".join(SERVICES["sandbox"]["healthcheck"]["test"])
    assert str(port) in healthcheck
    for name in ("worker", "scheduler"):
        url = urlsplit(environment_of(SERVICES[name])["BILLING_TXPG_BASE_URL"])
        assert (url.scheme, url.hostname, url.port) == ("http", "sandbox", port)
        assert url.path == "/api"


def test_the_bizon_sandbox_listens_where_the_worker_looks() -> None:
    sandbox = command_of(SERVICES["bizon-sandbox"])
    assert option(sandbox, "--gateway") == "bizon"
    assert option(sandbox, "--host") == "0.0.0.0"  # noqa: S104 - inside its container
    port = int(option(sandbox, "--port"))
    healthcheck = " ".join(SERVICES["bizon-sandbox"]["healthcheck"]["test"])
    assert str(port) in healthcheck
    for name in ("worker", "scheduler"):
        url = urlsplit(environment_of(SERVICES[name])["BILLING_BIZON_BASE_URL"])
        assert (url.scheme, url.hostname, url.port, url.path) == ("http", "bizon-sandbox", port, "")


@pytest.mark.parametrize("name", ["worker", "scheduler"])
def test_environment_is_what_the_settings_read(name: str) -> None:
    from worker.settings import SANDBOX_PASSWORD, SANDBOX_USERNAME, TxpgSettings

    env = environment_of(SERVICES[name])
    redis_url = urlsplit(env["BILLING_REDIS_URL"])
    assert redis_url.scheme == "redis"
    assert redis_url.hostname in SERVICES
    assert redis_url.port == int(redis_conf().get("port", "6379"))
    # The credentials are the sandbox's public test values, and go nowhere but the sandbox.
    assert (env["BILLING_TXPG_USERNAME"], env["BILLING_TXPG_PASSWORD"]) == (
        SANDBOX_USERNAME,
        SANDBOX_PASSWORD,
    )
    settings = TxpgSettings.from_env(env)  # raises if e.g. plain http is not allowed
    assert urlsplit(settings.base_url).hostname == "sandbox"
    from worker.gateway.bizon.settings import BizonSettings
    from worker.sandbox.bizon import PASSWORD, USERNAME

    assert (env["BILLING_BIZON_USERNAME"], env["BILLING_BIZON_PASSWORD"]) == (USERNAME, PASSWORD)
    bizon = BizonSettings.from_env(env)
    assert urlsplit(bizon.base_url).hostname == "bizon-sandbox"


def test_redis_runs_the_repository_config() -> None:
    redis = SERVICES["redis"]
    mounts = {
        target: source
        for source, target, *_ in (str(v).split(":") for v in redis.get("volumes") or [])
    }
    config_path = command_of(redis)[-1]
    assert mounts.get(config_path) == "./deploy/redis.conf"
    assert "/data" in mounts, "Redis data must live in a volume, not in the container"
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])


def test_redis_conf_is_durable_and_never_evicts() -> None:
    conf = redis_conf()
    assert conf["appendonly"] == "yes"
    assert conf["appendfsync"] in {"always", "everysec"}
    assert conf["maxmemory-policy"] == "noeviction"
    assert conf["dir"] == "/data"


# -- deploy/Dockerfile ------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions


def copy_sources(arguments: str) -> list[str] | None:
    """The sources of a COPY/ADD from the build context; None for ``--from`` copies."""
    words = json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)
    if any(word.startswith("--from") for word in words):
        return None
    words = [word for word in words if not word.startswith("--")]
    return words[:-1]


def test_dockerfile_builds_on_python_311_slim() -> None:
    froms = [args.split()[0] for keyword, args in dockerfile_instructions() if keyword == "FROM"]
    assert froms, "deploy/Dockerfile has no FROM"
    assert all(image == "python:3.11-slim" for image in froms), froms


def test_dockerfile_copies_only_what_exists() -> None:
    context, _ = build_of(SERVICES["worker"])
    ignore_file = context / ".dockerignore"
    ignored = [
        line.strip()
        for line in (ignore_file.read_text().splitlines() if ignore_file.exists() else [])
        if line.strip() and not line.startswith("#")
    ]
    copied: list[str] = []
    for keyword, args in dockerfile_instructions():
        if keyword in {"COPY", "ADD"}:
            copied += copy_sources(args) or []
    assert copied, "deploy/Dockerfile copies nothing from the build context"
    for source in copied:
        assert (context / source).exists(), f"Dockerfile copies {source}, which does not exist"
        assert not any(
            fnmatch.fnmatch(str(PurePosixPath(source)), pattern) for pattern in ignored
        ), f"Dockerfile copies {source}, which .dockerignore leaves out of the context"
    # What pip needs to build the project: its metadata (readme included) and its packages.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    needed = {"pyproject.toml", pyproject["readme"], "worker", "schedules"}
    assert needed <= {source.rstrip("/") for source in copied}


def test_dockerfile_runs_billing_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions()
    last_stage = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    users = [args for keyword, args in last_stage if keyword == "USER"]
    assert users, "the final stage must switch to a non-root USER"
    assert users[-1].split(":")[0] not in {"root", "0"}
    commands = [args for keyword, args in last_stage if keyword in {"CMD", "ENTRYPOINT"}]
    assert commands
    assert json.loads(commands[-1])[0] == "billing"
