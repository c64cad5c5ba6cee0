"""python -m tickstock.chart: one symbol's stored bars as candlesticks, its detections labelled,
SMA over the price and RSI below.

data.py assembles what to draw from stored rows (pure); figure.py draws it with mplfinance
(headless); __main__.py is the CLI, reading through adapters/postgres/readback.py.
"""
