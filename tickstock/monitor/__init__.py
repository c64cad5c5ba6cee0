"""python -m tickstock.monitor: a live terminal view of what the dashboard sees, read from Redis only.

state.py folds what was read into a view (pure); source.py reads Redis; render.py draws the view
with rich; __main__.py is the CLI (live, or ``--once --json`` for scripts).
"""
