"""plan.decide / plan.endpoint: which embedded servers start, with fakes for what answers."""

from __future__ import annotations

import pytest

from tickstock.adapters.embedded.plan import Endpoint, decide, endpoint

REDIS = endpoint("redis", "redis://127.0.0.1:6390/0")
PG = endpoint("postgres", "postgresql://root@127.0.0.1:5440/tickstock")


def answering(*who: Endpoint):
    return lambda e: e in who


def never_ours(e: Endpoint) -> bool:
    return False


@pytest.mark.parametrize("mode", ["auto", "always", "never"])
def test_servers_that_answer_are_used_and_nothing_starts(mode) -> None:
    decision = decide([REDIS, PG], mode, required=False, answers=answering(REDIS, PG), ours=lambda e: True)
    assert decision.start == ()
    assert decision.use == (REDIS, PG)
    assert decision.problems == () and not decision.fatal


def test_auto_starts_only_what_does_not_answer() -> None:
    decision = decide([REDIS, PG], "auto", required=False, answers=answering(REDIS), ours=never_ours)
    assert decision.start == (PG,)
    assert decision.use == (REDIS,)
    assert decision.problems == ()


def test_auto_starts_both_when_neither_answers() -> None:
    decision = decide([REDIS, PG], "auto", required=False, answers=answering(), ours=never_ours)
    assert decision.start == (REDIS, PG)


def test_never_reports_a_silent_server_and_starts_nothing() -> None:
    decision = decide([REDIS, PG], "never", required=False, answers=answering(REDIS), ours=never_ours)
    assert decision.start == ()
    assert len(decision.problems) == 1
    assert "PostgreSQL at 127.0.0.1:5440 does not answer and embedded: never" in decision.problems[0]
    assert "--embedded" in decision.problems[0]
    assert not decision.fatal  # the service goes on as it always did


def test_the_command_line_flag_overrides_never() -> None:
    decision = decide([REDIS, PG], "never", required=True, answers=answering(), ours=never_ours)
    assert decision.start == (REDIS, PG) and decision.problems == ()


@pytest.mark.parametrize("url, why", [
    ("redis://10.1.2.3:6379/0", "host '10.1.2.3' is not loopback"),
    ("redis://cache.example.com:6379/0", "host 'cache.example.com' is not loopback"),
    ("rediss://127.0.0.1:6380/0", "TLS"),
    ("unix:///run/redis.sock", "unix socket"),
])
def test_a_redis_url_no_embedded_server_can_serve_is_a_problem_never_a_start(url, why) -> None:
    e = endpoint("redis", url)
    for required in (False, True):
        decision = decide([e], "auto", required=required, answers=answering(), ours=never_ours)
        assert decision.start == ()
        assert why in decision.problems[0] and "does not answer" in decision.problems[0]
        assert decision.fatal is required  # --embedded: refused; auto: reported, the service retries


@pytest.mark.parametrize("url", ["postgresql://root@db.internal:5432/tickstock", "postgresql:///tickstock",
                                 "postgresql://root:s3cret@192.168.0.9/tickstock"])
def test_a_non_loopback_database_is_never_started(url) -> None:
    decision = decide([endpoint("postgres", url)], "auto", required=True, answers=answering(), ours=never_ours)
    assert decision.start == () and decision.fatal
    assert "s3cret" not in decision.problems[0]  # problems go to logs


@pytest.mark.parametrize("url", ["redis://localhost:6390", "redis://[::1]:6390/0", "redis://127.0.0.2:6390"])
def test_every_loopback_form_can_be_served(url) -> None:
    decision = decide([endpoint("redis", url)], "auto", required=False, answers=answering(), ours=never_ours)
    assert len(decision.start) == 1


def test_always_refuses_another_server_on_the_port_and_uses_its_own() -> None:
    other = decide([REDIS, PG], "always", required=False, answers=answering(REDIS, PG),
                   ours=lambda e: e is PG)
    assert other.use == (PG,) and other.start == ()
    assert other.fatal and "Redis at 127.0.0.1:6390 is another server" in other.problems[0]
    silent = decide([REDIS, PG], "always", required=False, answers=answering(), ours=never_ours)
    assert silent.start == (REDIS, PG) and not silent.fatal


def test_endpoint_parts() -> None:
    assert (PG.host, PG.port, PG.user, PG.database) == ("127.0.0.1", 5440, "root", "tickstock")
    default = endpoint("postgres", "postgresql://postgres@127.0.0.1/db")
    assert default.port == 5432 and default.user == "postgres"
    r = endpoint("redis", "redis://:p%40ss@localhost")
    assert (r.host, r.port, r.password, r.unservable) == ("localhost", 6379, "p@ss", None)
    assert endpoint("redis", "redis://[::1]:7000").address == "[::1]:7000"
