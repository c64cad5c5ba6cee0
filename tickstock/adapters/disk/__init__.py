"""Local disk adapters: the persistence write-ahead log."""

from .wal import Position, WalInUse, WalStats, WriteAheadLog

__all__ = ["Position", "WalInUse", "WalStats", "WriteAheadLog"]
