"""PostgreSQL adapter: schema migrations and the ``PostgresStore`` the service reads and writes with.

Works on plain PostgreSQL and on the dashboard's (TimescaleDB) database alike; the table contract
is docs/interface.md, "Database".
"""

from .batch import WriteResult
from .schema import migrate
from .store import PostgresStore
from .universe import UniverseNotFound

__all__ = ["PostgresStore", "UniverseNotFound", "WriteResult", "migrate"]
