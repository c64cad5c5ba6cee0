"""AdminServer: the HTTP control and observation surface, standard library only.

Routes:
- ``POST /api/admin/streaming/start``  201 started, 409 already running, 503 start-up failed (answered, never a second
  session) or the service is shutting down, 422 universe cannot be resolved.
- ``POST /api/admin/streaming/stop``   200 with the outcome, 409 when no session runs.
- ``GET  /api/streaming/status``       200 ``service.status()``; no token needed.
- ``GET  /metrics``                    Prometheus text exposition.
- ``GET  /healthz``                    200 while the process serves HTTP (liveness).
- ``GET  /readyz``                     200 if ``ready()`` says so, else 503 with its reason.

Guarantees:
- Control calls (POST) need ``Authorization: Bearer <admin_token>``: 401 without one, 403 with a
  wrong one (constant-time comparison). With no token configured every control call is refused.
- An unauthenticated control surface is never reachable from the network: the configuration
  refuses a non-loopback ``http.host`` without a token (exit 2), and the server itself still
  refuses to start (``ValueError``) if given such settings.
- Every response body is JSON except ``/metrics``; non-finite floats are sent as ``null``.
- A failing handler answers 500 with JSON; it never kills the server.
- Requests run on their own daemon threads, so a start/stop that blocks for seconds holds up
  neither scrapes nor status calls.
"""

from __future__ import annotations

import dataclasses
import hmac
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from loguru import logger
from prometheus_client import CONTENT_TYPE_LATEST

from tickstock.adapters.http.metrics import ServiceMetrics
from tickstock.config import HttpSettings, is_loopback

START_PATH = "/api/admin/streaming/start"
STOP_PATH = "/api/admin/streaming/stop"
STATUS_PATH = "/api/streaming/status"
_MAX_BODY = 64 * 1024  # control bodies are tiny; refuse anything that is not
_REQUEST_TIMEOUT = 30.0  # seconds a client may take to send its request (not our reply)


def encode_json(payload: Any) -> bytes:
    """JSON bytes; dataclasses become objects, NaN/Infinity become null, unknown types ``str``."""
    return orjson.dumps(payload, default=str, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)


def outcome_json(outcome: Any) -> dict[str, Any]:
    """The stop response body: the ``SessionOutcome`` fields plus the duration."""
    body = dataclasses.asdict(outcome) if dataclasses.is_dataclass(outcome) else dict(vars(outcome))
    started, stopped = body.get("started_at"), body.get("stopped_at")
    if isinstance(started, (int, float)) and isinstance(stopped, (int, float)):
        body["duration_seconds"] = round(stopped - started, 3)
    body["stopped"] = True
    return body


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # an in-flight start/stop must not hold up process exit


class _Server6(_Server):
    address_family = socket.AF_INET6


class AdminServer:
    """Serves the routes above for ``service`` on ``settings.host:settings.port`` (0 = any port)."""

    def __init__(
        self,
        service: Any,
        metrics: ServiceMetrics,
        settings: HttpSettings,
        ready: Callable[[], tuple[bool, str]],
    ) -> None:
        token = (settings.admin_token or "").strip()
        if not token and not is_loopback(settings.host):  # config.py refuses this already: defence only
            raise ValueError(
                f"refusing to serve the admin API on non-loopback host {settings.host!r} without a token: "
                "set TICKSTOCK_ADMIN_TOKEN (http.admin_token) or bind http.host to 127.0.0.1")
        self.service = service
        self.metrics = metrics
        self.settings = settings
        self.ready = ready
        self._token = token.encode("utf-8") if token else None
        # Snapshots only arrive while a session runs; the probe tells the metrics when none does.
        metrics.set_running_probe(lambda: bool(service.running))
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port once started (the real one when configured as 0), else the configured one."""
        return self._httpd.server_address[1] if self._httpd is not None else self.settings.port

    @property
    def url(self) -> str:
        host = self.settings.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def start(self) -> "AdminServer":
        """Bind and serve on a daemon thread. Raises ``OSError`` if the port cannot be bound."""
        if self._httpd is not None:
            return self
        server_cls = _Server6 if ":" in self.settings.host else _Server
        httpd = server_cls((self.settings.host.strip("[]"), self.settings.port), _handler_for(self))
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="admin-http", daemon=True)
        self._thread.start()
        logger.info("admin HTTP on {} (control {})", self.url,
                    "token-protected" if self._token else "disabled: TICKSTOCK_ADMIN_TOKEN is not set")
        return self

    def stop(self) -> None:
        """Stop accepting requests and close the socket. Requests in flight finish on their own."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # -- authorisation ---------------------------------------------------------------------------

    def authorise(self, header: str | None) -> tuple[int, str] | None:
        """None if the Authorization header grants control; else (HTTP status, message)."""
        if self._token is None:
            return 403, "control is disabled: TICKSTOCK_ADMIN_TOKEN is not set"
        scheme, _, credentials = (header or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return 401, "missing bearer token (Authorization: Bearer <token>)"
        if not hmac.compare_digest(credentials.strip().encode("utf-8"), self._token):
            return 403, "invalid token"
        return None

    # -- routes (each returns status, body) ------------------------------------------------------

    def handle_start(self) -> tuple[int, Any]:
        started, status = self.service.start_session(manual=True)
        if started:
            return 201, {"started": True, "status": status}
        if status.get("refused"):  # the service is shutting down: nothing may start now
            return 503, {"started": False, "error": status["refused"], "status": status}
        error = status.get("start_error") or {}
        if error.get("cause") == "universe":
            return 422, {"started": False, "error": error.get("reason", "universe cannot be resolved"), "status": status}
        if status.get("running"):
            return 409, {"started": False, "status": status}
        # Nothing runs although we asked: start-up failed (announced as a failed session).
        return 503, {"started": False, "error": "session start-up failed", "status": status}

    def handle_stop(self, reason: str) -> tuple[int, Any]:
        outcome = self.service.stop_session(final_status="stopped", reason=reason)
        if outcome is None:  # the service answers None when no session runs
            return 409, {"stopped": False, "reason": "no session running"}
        return 200, outcome_json(outcome)

    def handle_ready(self) -> tuple[int, Any]:
        ok, reason = self.ready()
        return (200, {"ready": True, "reason": reason}) if ok else (503, {"ready": False, "reason": reason})


def _handler_for(admin: AdminServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_AdminHandler):
        pass

    Handler.admin = admin
    return Handler


class _AdminHandler(BaseHTTPRequestHandler):
    admin: AdminServer
    server_version = "TickStock"
    timeout = _REQUEST_TIMEOUT  # a client that never finishes its request does not pin a thread

    _GET = {STATUS_PATH, "/metrics", "/healthz", "/readyz"}
    _POST = {START_PATH, STOP_PATH}

    # -- plumbing --------------------------------------------------------------------------------

    def version_string(self) -> str:
        return self.server_version  # no Python version on the wire

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        # One line per request on stderr would drown the service log (scrapes every few seconds).
        logger.debug("http {} {}", self.address_string(), format % args)

    def _send(self, status: int, body: Any, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else encode_json(body)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, {"error": message, "status": status}, headers=headers)

    def _path(self) -> str:
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        return path.rstrip("/") or "/"

    def _read_raw(self) -> bytes | None:
        """The request body, read in full; None (after answering) when it is unacceptable.

        Read before anything is answered: closing a socket with unread bytes makes the kernel
        send a reset, and the client would see that instead of our 401."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._error(400, "bad Content-Length")
            return None
        if length > _MAX_BODY or length < 0:
            self._error(413, f"request body over {_MAX_BODY} bytes")
            return None
        return self.rfile.read(length) if length else b""

    def _parse_body(self, raw: bytes) -> dict[str, Any] | None:
        """The body as a JSON object, ``{}`` when empty; None (after answering) when unusable."""
        if not raw.strip():
            return {}
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self._error(400, "body is not JSON")
            return None
        if not isinstance(body, dict):
            self._error(400, "body must be a JSON object")
            return None
        return body

    def _guarded(self, route: Callable[[], None]) -> None:
        try:
            route()
        except Exception as exc:  # answer, log, keep serving
            logger.opt(exception=True).error("admin HTTP {} {} failed: {!r}", self.command, self.path, exc)
            try:
                self._error(500, f"internal error: {exc.__class__.__name__}: {exc}")
            except Exception:
                pass  # the client went away; nothing left to tell it

    def _wrong_method(self, path: str) -> None:
        if path in self._GET or path in self._POST:
            allow = "GET, HEAD" if path in self._GET else "POST"
            self._error(405, f"{self.command} not allowed on {path}", headers={"Allow": allow})
        else:
            self._error(404, f"no such path: {path}")

    # -- methods ---------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._guarded(self._get)

    def do_HEAD(self) -> None:  # noqa: N802
        self._guarded(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._guarded(self._post)

    def do_PUT(self) -> None:  # noqa: N802
        self._guarded(lambda: self._wrong_method(self._path()))

    do_DELETE = do_PATCH = do_PUT  # noqa: N815

    def _get(self) -> None:
        path, admin = self._path(), self.admin
        if path == "/healthz":
            self._send(200, {"status": "alive"})
        elif path == "/readyz":
            self._send(*admin.handle_ready())
        elif path == STATUS_PATH:
            self._send(200, admin.service.status())
        elif path == "/metrics":
            self._send(200, admin.metrics.render(), content_type=CONTENT_TYPE_LATEST)
        else:
            self._wrong_method(path)

    def _post(self) -> None:
        path, admin = self._path(), self.admin
        raw = self._read_raw()  # first, whatever the answer: see _read_raw
        if raw is None:
            return
        if path not in self._POST:
            self._wrong_method(path)
            return
        denied = admin.authorise(self.headers.get("Authorization"))
        if denied is not None:
            status, message = denied
            # RFC 6750: a 401 names the scheme the client should use.
            headers = {"WWW-Authenticate": 'Bearer realm="tickstock"'} if status == 401 else None
            logger.warning("admin HTTP {} {} refused ({}): {}", self.command, path, status, message)
            self._error(status, message, headers=headers)
            return
        body = self._parse_body(raw)
        if body is None:
            return
        if path == START_PATH:
            logger.info("admin HTTP: start requested from {}", self.address_string())
            self._send(*admin.handle_start())
        else:
            reason = body.get("reason")
            reason = str(reason)[:200] if reason else "manual stop (admin API)"
            logger.info("admin HTTP: stop requested from {}: {}", self.address_string(), reason)
            self._send(*admin.handle_stop(reason))


__all__ = ["AdminServer", "is_loopback", "encode_json", "outcome_json", "START_PATH", "STOP_PATH", "STATUS_PATH"]
