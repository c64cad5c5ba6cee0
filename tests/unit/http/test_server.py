"""AdminServer: routes, status codes, authorisation and the refusal to expose control."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import CONTENT_TYPE_LATEST

from tickstock.adapters.http import AdminServer, ServiceMetrics, is_loopback
from tickstock.config import HttpSettings

START = "/api/admin/streaming/start"
STOP = "/api/admin/streaming/stop"
STATUS = "/api/streaming/status"


# -- authorisation -------------------------------------------------------------------------------


def test_start_without_token_is_401_and_starts_nothing(server, call, fake):
    response = call(server, "POST", START)
    assert response.status == 401
    assert response.headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert "bearer" in response.json()["error"].lower()
    assert fake.start_calls == []


def test_start_with_wrong_token_is_403_and_starts_nothing(server, call, fake):
    response = call(server, "POST", START, token="not-the-token")
    assert response.status == 403
    assert response.json()["error"] == "invalid token"
    assert fake.start_calls == []


def test_non_bearer_scheme_is_401(server, call, fake, token):
    response = call(server, "POST", START, headers={"Authorization": f"Basic {token}"})
    assert response.status == 401
    assert fake.start_calls == []


def test_start_with_right_token_is_201_with_status(server, call, fake, token):
    response = call(server, "POST", START, token=token)
    assert response.status == 201
    body = response.json()
    assert body["started"] is True
    assert body["status"]["running"] is True
    assert fake.start_calls == [True]  # manual=True


@pytest.mark.parametrize("path", [START, STOP])
def test_no_token_configured_refuses_every_control_call(make_server, call, fake, path):
    server = make_server(token="")
    for token in (None, "", "anything"):
        response = call(server, "POST", path, token=token)
        assert response.status == 403
        assert "TICKSTOCK_ADMIN_TOKEN is not set" in response.json()["error"]
    assert fake.start_calls == [] and fake.stop_calls == []


def test_whitespace_token_counts_as_none(make_server, call, fake):
    server = make_server(token="   ")
    response = call(server, "POST", START, token="   ")
    assert response.status == 403
    assert fake.start_calls == []


def test_auth_is_checked_before_the_body_is_parsed(server, call, fake):
    response = call(server, "POST", STOP, token="wrong", body=b"{not json")
    assert response.status == 403
    assert fake.stop_calls == []


# -- start / stop --------------------------------------------------------------------------------


def test_start_twice_answers_409_and_starts_once(server, call, fake, token):
    assert call(server, "POST", START, token=token).status == 201
    second = call(server, "POST", START, token=token)
    assert second.status == 409
    assert second.json()["started"] is False
    assert second.json()["status"]["running"] is True
    assert fake.start_calls == [True]


def test_start_that_fails_during_startup_is_503_not_201(server, call, fake, token):
    fake.start_fails = True
    response = call(server, "POST", START, token=token)
    assert response.status == 503
    assert response.json()["started"] is False
    assert response.json()["status"]["running"] is False
    assert fake.start_calls == [True]


def test_concurrent_starts_start_one_session(make_server, call, fake_service_cls, token):
    lock = threading.Lock()

    class LockedFake(fake_service_cls):  # the real service serialises starts with a lock too
        def start_session(self, manual=True):
            with lock:
                return super().start_session(manual)

    service = LockedFake()
    server = make_server(service=service)
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda: statuses.append(call(server, "POST", START, token=token).status))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(statuses) == [201] + [409] * 7
    assert service.start_calls == [True]


def test_universe_error_is_422_with_the_message(make_server, call, fake_service_cls, token):
    service = fake_service_cls(universe_error="universe 'x' resolves to no symbols")
    server = make_server(service=service)
    response = call(server, "POST", START, token=token)
    assert response.status == 422
    assert response.json()["error"] == "universe 'x' resolves to no symbols"
    assert response.json()["started"] is False


def test_start_after_shutdown_began_is_503(make_server, call, fake_service_cls, token):
    service = fake_service_cls(refused="the service is shutting down")
    server = make_server(service=service)
    response = call(server, "POST", START, token=token)
    assert response.status == 503
    assert response.json()["error"] == "the service is shutting down" and response.json()["started"] is False


def test_stop_when_idle_is_409(server, call, fake, token):
    response = call(server, "POST", STOP, token=token)
    assert response.status == 409
    assert response.json() == {"stopped": False, "reason": "no session running"}


def test_stop_running_returns_the_outcome(make_server, call, fake_service_cls, token):
    service = fake_service_cls(running=True)
    server = make_server(service=service)
    response = call(server, "POST", STOP, token=token)
    assert response.status == 200
    body = response.json()
    assert body["session_id"] == "s-1"
    assert body["final_status"] == "stopped"
    assert body["reason"] == "manual stop (admin API)"
    assert (body["total_patterns"], body["total_indicators"]) == (7, 42)
    assert body["duration_seconds"] == pytest.approx(60.5)
    assert service.stop_calls == [("stopped", "manual stop (admin API)")]


def test_stop_reason_from_body(make_server, call, fake_service_cls, token):
    service = fake_service_cls(running=True)
    server = make_server(service=service)
    response = call(server, "POST", STOP, token=token, body=b'{"reason": "maintenance"}',
                    headers={"Content-Type": "application/json"})
    assert response.status == 200
    assert response.json()["reason"] == "maintenance"
    assert service.stop_calls == [("stopped", "maintenance")]


def test_stop_with_bad_json_body_is_400(make_server, call, fake_service_cls, token):
    service = fake_service_cls(running=True)
    server = make_server(service=service)
    response = call(server, "POST", STOP, token=token, body=b"[1, 2]")
    assert response.status == 400
    assert service.stop_calls == []
    assert service.running


def test_service_exception_is_500_json_and_server_keeps_serving(make_server, call, fake_service_cls, token):
    class Broken(fake_service_cls):
        def stop_session(self, final_status="stopped", reason=""):
            raise RuntimeError("boom")

    server = make_server(service=Broken(running=True))
    response = call(server, "POST", STOP, token=token)
    assert response.status == 500
    assert "boom" in response.json()["error"]
    assert call(server, "GET", "/healthz").status == 200


# -- read-only routes ----------------------------------------------------------------------------


def test_status_needs_no_token(server, call, fake):
    response = call(server, "GET", STATUS)
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"running": False, "session": None, "last_session": None, "universe": "test"}
    assert fake.status_calls == 1


def test_healthz(server, call):
    response = call(server, "GET", "/healthz")
    assert response.status == 200
    assert response.json() == {"status": "alive"}


def test_readyz_ready(make_server, call):
    response = call(make_server(ready=(True, "session running")), "GET", "/readyz")
    assert response.status == 200
    assert response.json()["ready"] is True


def test_readyz_not_ready_is_503_with_reason(make_server, call):
    response = call(make_server(ready=(False, "database unreachable")), "GET", "/readyz")
    assert response.status == 503
    assert response.json() == {"ready": False, "reason": "database unreachable"}


def test_metrics_content_type(server, call):
    response = call(server, "GET", "/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
    assert b"tickstock_session_state" in response.body


def test_unknown_path_is_404_json(server, call):
    response = call(server, "GET", "/nope")
    assert response.status == 404
    assert response.json()["error"] == "no such path: /nope"


def test_wrong_method_is_405(server, call, fake, token):
    response = call(server, "GET", START)
    assert response.status == 405
    assert response.headers["Allow"] == "POST"
    post_status = call(server, "POST", STATUS, token=token, body=b'{"x": 1}')
    assert post_status.status == 405
    assert post_status.headers["Allow"] == "GET, HEAD"
    assert fake.start_calls == []


def test_status_with_non_finite_floats_is_valid_json(make_server, call, fake_service_cls):
    class Odd(fake_service_cls):
        def status(self):
            return {"running": False, "lag": float("nan"), "inf": float("inf")}

    response = call(make_server(service=Odd()), "GET", STATUS)
    assert response.status == 200
    assert response.json() == {"running": False, "lag": None, "inf": None}


# -- exposure ------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com", ""])
def test_non_loopback_host_without_token_is_refused(host, fake):
    settings = HttpSettings(host=host, port=0, admin_token="")
    with pytest.raises(ValueError, match="TICKSTOCK_ADMIN_TOKEN"):
        AdminServer(fake, ServiceMetrics(), settings, lambda: (True, ""))


def test_non_loopback_host_with_token_is_allowed(fake, token):
    server = AdminServer(fake, ServiceMetrics(), HttpSettings(host="0.0.0.0", port=0, admin_token=token),
                         lambda: (True, ""))
    assert server.port == 0  # constructed; not started, so the configured port


@pytest.mark.parametrize("host,expected", [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("LOCALHOST", True), ("0.0.0.0", False), ("10.0.0.1", False), ("::", False), ("myhost", False),
])
def test_is_loopback(host, expected):
    assert is_loopback(host) is expected


def test_port_zero_binds_a_real_port_and_stop_releases_it(make_server, call):
    server = make_server()
    assert server.port > 0
    assert call(server, "GET", "/healthz").status == 200
    port = server.port
    server.stop()
    assert server.port == 0
    import socket
    with socket.socket() as probe:  # nothing listens there any more
        assert probe.connect_ex(("127.0.0.1", port)) != 0
