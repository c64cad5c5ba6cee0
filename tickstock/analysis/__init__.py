"""Pure, incremental analysis of closed bars: candlestick patterns, head-and-shoulders, RSI, SMA,
session VWAP, any TA-Lib function by name (talib_catalog, talib_functions), the registry that maps
definition rows to them, and the per-symbol pipeline.

No I/O, no threads, no imports of actors or adapters: everything here is a function of the bars fed
in, so it is tested against TA-Lib directly. See each module's docstring for its guarantees.
"""

from tickstock.analysis.base import Component, IndicatorResult, PatternResult, Result
from tickstock.analysis.candles import Doji, Hammer
from tickstock.analysis.definitions import (
    Definition,
    DefinitionSet,
    definitions_from_config,
    select_definitions,
)
from tickstock.analysis.head_shoulders import HeadShoulders, InverseHeadShoulders
from tickstock.analysis.pipeline import AnalysisPipeline, ComponentError, IndicatorAlert, PipelineOutput
from tickstock.analysis.registry import UnknownComponent, canonical_name, create, known_names, lookup
from tickstock.analysis.rsi import RSI
from tickstock.analysis.sma import SMA
from tickstock.analysis.vwap import VWAP

__all__ = [
    "AnalysisPipeline", "Component", "ComponentError", "Definition", "DefinitionSet", "Doji", "Hammer",
    "HeadShoulders", "IndicatorAlert", "IndicatorResult", "InverseHeadShoulders", "PatternResult",
    "PipelineOutput", "RSI", "Result", "SMA", "UnknownComponent", "VWAP", "canonical_name", "create",
    "definitions_from_config", "known_names", "lookup", "select_definitions",
]
