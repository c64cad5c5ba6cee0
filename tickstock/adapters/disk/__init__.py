"""Local disk adapters: the persistence write-ahead log."""

from .wal import Position, WalStats, WriteAheadLog

__all__ = ["Position", "WalStats", "WriteAheadLog"]
