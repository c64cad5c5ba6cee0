"""``python -m tickstock.bench``: the streaming service measured from outside (issue 8).

Small modules: ``resp`` (PUBLISH commands pre-encoded as RESP bytes), ``pacing`` (the generator's
schedule), ``loadgen`` (the load generator process), ``sandbox`` (database, config, the service as a
subprocess), ``observe`` (events, CPU/RSS, the subscription's backlog, bars in the database),
``floor`` (the inline floor), ``ceiling`` (the receive ceiling), ``stats``, ``report`` and
``scenarios``. Nothing here imports ``tests/``; nothing in the service imports this package.
"""
