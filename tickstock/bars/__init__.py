"""Bar building: pure, thread-free folding of ticks into 1-minute OHLCV bars."""

from tickstock.bars.aggregator import MinuteBarAggregator

__all__ = ["MinuteBarAggregator"]
