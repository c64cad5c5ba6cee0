"""TickStock streaming analytics engine: ticks in, bars, patterns and indicators out."""

__version__ = "0.1.0"
