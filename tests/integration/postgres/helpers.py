"""Plain SQL helpers for the PostgreSQL integration tests (outside the store under test)."""

from __future__ import annotations

from typing import Any

import psycopg2

# The dashboard's table, reduced to the columns the store reads (and one it does not).
CACHE_ENTRIES_DDL = """
CREATE TABLE IF NOT EXISTS cache_entries (
    id SERIAL PRIMARY KEY, type TEXT, name TEXT, key TEXT, value JSONB,
    created_at TIMESTAMPTZ DEFAULT now()
)
"""


def run_sql(dsn: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Run one statement on its own committed connection; the rows it returns, if any."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()
