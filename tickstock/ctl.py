"""tickstockctl: drive a running TickStock service through its admin HTTP API (urllib only).

    python -m tickstock.ctl [--url http://127.0.0.1:8080] [--token TOKEN] start|stop|status|health

Guarantees: prints the JSON response on stdout; exits 0 on a 2xx answer and 1 on anything else
(HTTP error, refused connection, timeout), with the HTTP status and message on stderr. The token
defaults to $TICKSTOCK_ADMIN_TOKEN and is sent only on the control commands.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from http import HTTPStatus
from collections.abc import Sequence
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8080"

# command -> (method, path, needs the token)
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "start": ("POST", "/api/admin/streaming/start", True),
    "stop": ("POST", "/api/admin/streaming/stop", True),
    "status": ("GET", "/api/streaming/status", False),
    "health": ("GET", "/readyz", False),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tickstockctl", description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("TICKSTOCK_URL", DEFAULT_URL),
                        help=f"service base URL (default $TICKSTOCK_URL or {DEFAULT_URL})")
    parser.add_argument("--token", default=None, help="admin token (default $TICKSTOCK_ADMIN_TOKEN)")
    # Start and stop wait for the session to come up or drain: give them well over the service's
    # own deadline (session.shutdown_deadline_seconds, 20 s by default).
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the answer")
    parser.add_argument("--reason", default=None, help="stop: the reason recorded with the session")
    parser.add_argument("command", choices=sorted(COMMANDS))
    return parser


def _message(status: int, body: bytes) -> str:
    """The most telling line of an error answer: its ``error``/``reason`` field, else the body."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:500] or _phrase(status)
    if isinstance(data, dict):
        for key in ("error", "reason"):
            if data.get(key):
                return str(data[key])
        if data.get("started") is False:
            return "a session is already running"
    return _phrase(status)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "unexpected status"


def _print_body(body: bytes) -> None:
    try:
        print(json.dumps(json.loads(body), indent=2, sort_keys=True))
    except ValueError:
        print(body.decode("utf-8", "replace"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; 0 on a 2xx answer, 1 otherwise."""
    args = _parser().parse_args(argv)
    method, path, needs_token = COMMANDS[args.command]
    token = args.token if args.token is not None else os.environ.get("TICKSTOCK_ADMIN_TOKEN", "")
    headers = {"Accept": "application/json"}
    data = None
    if needs_token and token:
        headers["Authorization"] = f"Bearer {token}"
    if method == "POST":
        payload = {"reason": args.reason} if args.command == "stop" and args.reason else {}
        data = json.dumps(payload).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(args.url.rstrip("/") + path, data=data, headers=headers, method=method)
    try:
        # No proxies: $HTTP_PROXY must not divert admin calls (and the token) to another host.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=args.timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:  # a non-2xx answer: still a JSON body worth showing
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"tickstockctl: cannot reach {args.url}: {reason}", file=sys.stderr)
        return 1
    _print_body(body)
    if 200 <= status < 300:
        return 0
    print(f"tickstockctl: HTTP {status}: {_message(status, body)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
