"""``python -m tickstock.actors --now --embedded`` where nothing answers: the service starts real
Redis and PostgreSQL from the wheels on the configured (free, loopback) ports under its working
directory's var/embedded, runs a session on them, and SIGTERM leaves no server process behind.
Never touches 6379/5432."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg2
import pytest
import redis
import yaml

from tests.e2e.harness import e2e_config

pytestmark = [pytest.mark.e2e, pytest.mark.embedded]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, proc: subprocess.Popen, log: Path):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout}s (exit {proc.poll()}); log:\n{log.read_text()[-3000:]}")


def read_pid(path: Path) -> int:
    return int(path.read_text().split()[0])


def test_embedded_servers_live_and_die_with_the_service(tmp_path: Path) -> None:
    redis_port, pg_port = free_port(), free_port()
    config, cfg = e2e_config(tmp_path, f"postgresql://root@127.0.0.1:{pg_port}/tickstock_e2e",
                             **{"redis.url": f"redis://127.0.0.1:{redis_port}/0"})
    cfg["embedded"] = "never"  # in the file; --embedded on the command line wins
    config.write_text(yaml.safe_dump(cfg))
    log = tmp_path / "service.log"
    env = {**os.environ, "TICKSTOCK_CONFIG": str(config), "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tickstock.actors", "--now", "--embedded"], cwd=tmp_path,
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    client = redis.Redis(port=redis_port, socket_timeout=2, retry=None)
    try:
        def session():
            try:
                raw = client.get(cfg["keys"]["session"])
            except redis.ConnectionError:
                return None
            return json.loads(raw) if raw else None

        started = wait_until(session, 90, "no session on the embedded Redis", proc, log)
        assert started
        text = log.read_text()
        assert text.count("did not answer: started embedded") == 1, text
        assert f"Redis 6.2.14 on 127.0.0.1:{redis_port}" in text and f"on 127.0.0.1:{pg_port}" in text
        conn = psycopg2.connect(f"postgresql://root@127.0.0.1:{pg_port}/tickstock_e2e")
        try:
            with conn.cursor() as cur:  # migrated, and the session recorded in the embedded database
                cur.execute("SELECT count(*) FROM streaming_sessions")
                assert cur.fetchone()[0] == 1
        finally:
            conn.close()
        embedded = tmp_path / "var" / "embedded"
        pids = [read_pid(embedded / "redis" / "redis.pid"), read_pid(embedded / "postgres" / "data" / "postmaster.pid")]
        family = pids + [c.pid for c in psutil.Process(pids[1]).children(recursive=True)]
        assert all(psutil.pid_exists(p) for p in pids)
    finally:
        client.close()
        if proc.poll() is None:  # to the service's whole process group, as a terminal's Ctrl-C is
            os.killpg(proc.pid, signal.SIGTERM)
        rc = proc.wait(60)
    assert rc == 0, log.read_text()[-3000:]
    text = log.read_text()
    # the servers outlived the service's own shutdown: the session's end reached the embedded Redis
    assert "SessionStopped acknowledged by redis" in text and "could not be published" not in text, text
    assert "session stopped" in text and "embedded servers stopped" in text
    left = [p for p in family if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not left, f"still running: {left}"
    for port in (redis_port, pg_port):
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    assert (embedded / "redis" / "dump.rdb").exists() and (embedded / "postgres" / "data" / "PG_VERSION").exists()
