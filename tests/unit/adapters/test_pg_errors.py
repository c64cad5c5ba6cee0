"""Error classification: what a failed write means for its rows (real psycopg2 error classes)."""

from __future__ import annotations

import psycopg2
import psycopg2.errors as pe
import psycopg2.extensions
import pytest

from tickstock.adapters.postgres.errors import ErrorKind, classify, connection_lost, describe, sqlstate

TRANSIENT, ROW, TABLE = ErrorKind.TRANSIENT, ErrorKind.ROW, ErrorKind.TABLE


@pytest.mark.parametrize("exc, kind, whole_connection", [
    # connection and client-side
    (psycopg2.OperationalError("server closed the connection unexpectedly"), TRANSIENT, True),
    (psycopg2.InterfaceError("connection already closed"), TRANSIENT, True),
    (ConnectionRefusedError(111, "Connection refused"), TRANSIENT, True),
    (pe.ConnectionFailure("08006"), TRANSIENT, True),
    (pe.AdminShutdown("terminating connection due to administrator command"), TRANSIENT, True),
    # one statement: the connection is fine
    (pe.QueryCanceled("canceling statement due to statement timeout"), TRANSIENT, False),
    (psycopg2.extensions.QueryCanceledError("canceling statement"), TRANSIENT, False),
    (pe.LockNotAvailable("canceling statement due to lock timeout"), TRANSIENT, False),
    (pe.DeadlockDetected("deadlock detected"), TRANSIENT, False),
    (pe.SerializationFailure("could not serialize access"), TRANSIENT, False),
    (pe.DiskFull("could not extend file"), TRANSIENT, False),
    (pe.TooManyConnections("too many clients"), TRANSIENT, False),
    (pe.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"), TRANSIENT, False),
    # the row
    (pe.NumericValueOutOfRange("numeric field overflow"), ROW, False),
    (pe.InvalidTextRepresentation("invalid input syntax for type uuid"), ROW, False),
    (pe.ForeignKeyViolation("violates foreign key constraint"), ROW, False),
    (pe.UniqueViolation("duplicate key"), ROW, False),
    (pe.CheckViolation("violates check constraint"), ROW, False),
    (psycopg2.DataError("bad value"), ROW, False),
    (psycopg2.IntegrityError("constraint"), ROW, False),
    (ValueError("Out of range float values are not JSON compliant"), ROW, False),
    # the table (or the statement, whatever the row)
    (pe.UndefinedColumn('column "timeframe" does not exist'), TABLE, False),
    (pe.UndefinedTable('relation "intraday_patterns" does not exist'), TABLE, False),
    (pe.InsufficientPrivilege("permission denied for table intraday_patterns"), TABLE, False),
    (pe.SyntaxError("syntax error at or near"), TABLE, False),
    (pe.InternalError_("internal error"), TABLE, False),
    (psycopg2.ProgrammingError("something else"), TABLE, False),
    (RuntimeError("a bug"), TABLE, False),
])
def test_classify(exc, kind, whole_connection):
    assert classify(exc) is kind
    assert connection_lost(exc) is whole_connection


def test_the_code_comes_from_the_class_when_the_server_did_not_set_one():
    assert sqlstate(pe.InsufficientPrivilege("x")) == "42501"
    assert sqlstate(pe.LockNotAvailable("x")) == "55P03"
    assert sqlstate(psycopg2.OperationalError("x")) is None
    assert sqlstate(ValueError("x")) is None


def test_describe_names_code_class_and_message():
    assert describe(pe.InsufficientPrivilege("permission denied for table x\n")) == \
        "42501 InsufficientPrivilege: permission denied for table x"
    assert describe(psycopg2.OperationalError("server closed the connection unexpectedly\n\tThis probably")) == \
        "OperationalError: server closed the connection unexpectedly"
    assert describe(RuntimeError()) == "RuntimeError"
