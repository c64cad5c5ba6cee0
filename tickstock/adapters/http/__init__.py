"""HTTP adapter: the admin/control API, status, health probes and Prometheus metrics (stdlib server)."""

from tickstock.adapters.http.metrics import ServiceMetrics
from tickstock.adapters.http.server import AdminServer, is_loopback

__all__ = ["AdminServer", "ServiceMetrics", "is_loopback"]
