"""What a failed database call means for the rows it carried: keep and retry, refuse the row, or
set the table aside.

``classify(exc)`` is the one place that reads SQLSTATEs. Kinds:

- ``TRANSIENT``: the data is fine and so is the statement; the database (or the connection to it) is
  not, for now. Connection loss and every client-side ``OperationalError``/``InterfaceError``
  without a code, ``OSError``; SQLSTATE classes 08 (connection), 53 (insufficient resources),
  57 (operator intervention, including 57014 ``query_canceled`` from ``statement_timeout``),
  40 (deadlock, serialization failure), 55P03 ``lock_not_available`` (``lock_timeout``) and
  25006 ``read_only_sql_transaction`` (a fail-over to a standby). Keep the rows, retry soon.
- ``ROW``: this row is refused and always will be: SQLSTATE classes 22 (data exception) and 23
  (integrity constraint), and client-side conversion failures (``ValueError``, ``TypeError``,
  ``OverflowError``). Report the row once, write the others.
- ``TABLE``: the statement cannot work for any row of this table until someone changes the schema or
  the grants: class 42 (undefined column or table, syntax, 42501 insufficient privilege) and anything
  else not known to be transient or a row's fault. Keep the table's rows, retry rarely, say so.

``connection_lost(exc)`` tells, among transient errors, those that concern the whole connection (so
every table must wait) from those that concern one statement (a lock, a cancelled statement).

psycopg2 sets ``pgcode`` only on errors that came from the server; an error built in code (tests)
has none, so the code is also recovered from the exception's class (``psycopg2.errors``).
"""

from __future__ import annotations

import enum

import psycopg2
import psycopg2.errorcodes
import psycopg2.errors
import psycopg2.extensions


class ErrorKind(enum.Enum):
    TRANSIENT = "transient"
    ROW = "row"
    TABLE = "table"


_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57"})
_TRANSIENT_CODES = frozenset({"55P03", "25006"})
_ROW_CLASSES = frozenset({"22", "23"})
_TABLE_CLASSES = frozenset({"42"})
_CONNECTION_CLASSES = frozenset({"08"})
# 57P01..57P05: the server is shutting down, cannot connect now, the session was terminated: the
# connection is gone. 57014 (a cancelled statement) leaves the connection usable.
_CONNECTION_CODES = frozenset({"57P01", "57P02", "57P03", "57P04", "57P05"})

_CLIENT_ROW_ERRORS = (ValueError, TypeError, OverflowError)


def _code_by_class() -> dict[type, str]:
    table: dict[type, str] = {}
    for name, value in vars(psycopg2.errorcodes).items():
        if name.isupper() and isinstance(value, str) and len(value) == 5:
            try:
                table.setdefault(psycopg2.errors.lookup(value), value)
            except KeyError:
                pass
    # Base classes psycopg2 raises under their own names.
    table.setdefault(psycopg2.extensions.QueryCanceledError, "57014")
    table.setdefault(psycopg2.extensions.TransactionRollbackError, "40000")
    return table


_CODE_BY_CLASS = _code_by_class()


def sqlstate(exc: BaseException) -> str | None:
    """The five-character SQLSTATE of ``exc``: the server's, else the one its class stands for."""
    code = getattr(exc, "pgcode", None)
    if code:
        return code
    for cls in type(exc).__mro__:
        code = _CODE_BY_CLASS.get(cls)
        if code:
            return code
    return None


def classify(exc: BaseException) -> ErrorKind:
    """What ``exc``, raised by a write, means for the rows of that write (see the module doc)."""
    code = sqlstate(exc)
    if code is not None:
        group = code[:2]
        if group in _TRANSIENT_CLASSES or code in _TRANSIENT_CODES:
            return ErrorKind.TRANSIENT
        if group in _ROW_CLASSES:
            return ErrorKind.ROW
        if group in _TABLE_CLASSES:
            return ErrorKind.TABLE
    if isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)):
        # Client-side (no code: the connection broke, connect failed) or a server code outside the
        # classes above that psycopg2 still files as operational.
        return ErrorKind.TRANSIENT
    if isinstance(exc, (psycopg2.DataError, psycopg2.IntegrityError)):
        return ErrorKind.ROW
    if isinstance(exc, psycopg2.Error):
        return ErrorKind.TABLE
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return ErrorKind.TRANSIENT
    if isinstance(exc, _CLIENT_ROW_ERRORS):
        return ErrorKind.ROW
    return ErrorKind.TABLE


def connection_lost(exc: BaseException) -> bool:
    """True if ``exc`` means the connection (not one statement) failed: every table must wait."""
    code = sqlstate(exc)
    if code is not None:
        return code[:2] in _CONNECTION_CLASSES or code in _CONNECTION_CODES
    if isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)):
        return True
    return isinstance(exc, (ConnectionError, OSError)) and not isinstance(exc, psycopg2.Error)


def describe(exc: BaseException) -> str:
    """One line naming the error: ``42501 InsufficientPrivilege: permission denied for table x``."""
    code = sqlstate(exc)
    message = ""
    if isinstance(exc, psycopg2.Error) and exc.diag.message_primary:
        message = exc.diag.message_primary
    if not message:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    prefix = f"{code} " if code else ""
    return f"{prefix}{type(exc).__name__}: {message}" if message else f"{prefix}{type(exc).__name__}"
