"""Versioned schema migrations: ``migrations/NNN_name.sql`` applied in order, each at most once.

Guarantees of :func:`migrate`:

- Idempotent: a version recorded in ``schema_migrations`` is never applied again.
- Safe to run concurrently (several service instances starting at once): every run takes the same
  transaction-scoped advisory lock first, so runs are serialised and the later one finds nothing
  to do.
- All or nothing: the pending migrations and their ``schema_migrations`` rows commit in one
  transaction; on any error nothing is applied and the error is raised.
- Non-destructive on the dashboard's database: the migrations only create what is missing.
- Bounded: the connection sets ``lock_timeout`` and ``statement_timeout`` (a table locked by
  another client makes start-up fail with the psycopg2 error, not hang).
- Housekeeping after the migrations, in its own transaction: write-ledger ids older than
  ``ledger_retention_seconds`` are deleted. A failure there is logged, never raised: it must not
  stop the service from starting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import psycopg2
from loguru import logger

# Arbitrary but fixed: every TickStock migrator must contend for the same advisory lock.
# (ASCII "tickstk"; a constant rather than hashtext(), whose result is not guaranteed stable.)
MIGRATION_LOCK_KEY = 0x7469636B73746B

_FILE_NAME = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    TEXT PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file. ``version`` is the file's stem (``001_initial_schema``): the name is
    part of the version so that it cannot be mistaken for another tool's ``001``."""

    number: int
    version: str
    sql: str


def available_migrations() -> list[Migration]:
    """The packaged migrations, ordered by number. Raises ValueError on a misnamed file or on
    two files sharing a number (either would make the apply order ambiguous)."""
    folder = resources.files(__package__).joinpath("migrations")
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise ValueError(f"migration file name must be NNN_name.sql: {entry.name!r}")
        number = int(match.group(1))
        if number in found:
            raise ValueError(f"two migrations numbered {number}: {found[number].version}, {entry.name}")
        found[number] = Migration(number, entry.name[: -len(".sql")], entry.read_text("utf-8"))
    return [found[n] for n in sorted(found)]


# Write-ledger ids (migration 004) are needed only while a row may still be retried or replayed.
LEDGER_RETENTION_SECONDS = 7 * 86_400
PRUNE_LEDGER = "DELETE FROM tickstock_written_rows WHERE written_at < now() - make_interval(secs => %s)"


def migrate(
    dsn: str,
    *,
    connect_timeout: int = 10,
    lock_timeout_seconds: float = 60.0,
    statement_timeout_seconds: float = 600.0,
    ledger_retention_seconds: float = LEDGER_RETENTION_SECONDS,
) -> list[str]:
    """Apply the pending migrations to the database at ``dsn``, then prune the write ledger.

    Returns the versions applied by THIS call, in order (empty when the schema was already up to
    date, e.g. because a concurrent run did the work). Raises psycopg2 errors unchanged.
    """
    migrations = available_migrations()
    conn = psycopg2.connect(dsn, connect_timeout=connect_timeout)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT set_config('lock_timeout', %s, false), set_config('statement_timeout', %s, false)",
                (f"{int(lock_timeout_seconds * 1000)}ms", f"{int(statement_timeout_seconds * 1000)}ms"),
            )
            # Taken before anything else, including the ledger's CREATE TABLE IF NOT EXISTS, which
            # is not itself safe against a concurrent identical CREATE.
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            cur.execute(_CREATE_LEDGER)
            cur.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in cur.fetchall()}
            applied: list[str] = []
            for migration in migrations:
                if migration.version in done:
                    continue
                cur.execute(migration.sql)
                # applied_at from its DEFAULT: tolerant of a ledger with extra columns.
                cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (migration.version,))
                applied.append(migration.version)
        conn.commit()  # also releases the advisory lock
        _prune_ledger(conn, ledger_retention_seconds)
        return applied
    finally:
        # Closing an uncommitted transaction rolls it back server-side: nothing half-applied.
        conn.close()


def _prune_ledger(conn: psycopg2.extensions.connection, retention_seconds: float) -> None:
    """Delete write-ledger ids older than the retention (see migration 004). Best effort."""
    try:
        with conn.cursor() as cur:
            cur.execute(PRUNE_LEDGER, (float(retention_seconds),))
            pruned = cur.rowcount
        conn.commit()
    except psycopg2.Error as exc:
        try:
            conn.rollback()
        except psycopg2.Error:
            pass  # the connection is closed by the caller anyway
        logger.warning("write ledger not pruned (will retry at the next start): {!r}", exc)
        return
    if pruned:
        logger.info("write ledger: {} ids older than {:.0f} s pruned", pruned, retention_seconds)
