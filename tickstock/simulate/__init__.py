"""The market simulator and replay: ``python -m tickstock.simulate``.

A tool that feeds the service from outside, as the upstream forwarder does: it only publishes ticks
on Redis in the contract's format (tickstock/messages/ticks.py).

  tick.py      the simulator's tick (event time, symbol, price, volume) and its encoding
  activity.py  the intraday U-shape of trading activity over the NYSE session (market calendar)
  walk.py      a deterministic random walk per symbol with heavy-tailed trade sizes
  expand.py    a 1-minute bar as ticks that re-aggregate to exactly that bar
  shapes.py    injected shapes (doji, hammer, head_shoulders, rsi_overbought) and the walk with them
  replay.py    CSV (ticks or bars) and ohlcv_1min sources, in event-time order
  pacing.py    replay pacing: event time -> wall time at a speed
  publish.py   the live and replay publishing loops (pipelined PUBLISH, acknowledged counts)
  progress.py  the rich progress line and the one-line summary
  __main__.py  the command line
"""
