"""``python -m tickstock.demo`` (``make demo``): the service, the market simulator with injected
shapes and the monitor, started in order against real (or embedded) servers, then a chart.

  plan.py      what runs, decided without running anything: options, the demo's settings, each
               step's command line, when to start the simulator and when to stop
  __main__.py  the orchestration: runs those commands as subprocesses and stops them on every way out
"""
