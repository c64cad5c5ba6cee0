"""Bar building: pure, thread-free folding of ticks into 1-minute OHLCV bars."""

from tickstock.bars.aggregator import MinuteBarAggregator
from tickstock.bars.merge import merge_parts

__all__ = ["MinuteBarAggregator", "merge_parts"]
