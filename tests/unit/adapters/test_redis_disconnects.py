"""adapters.redis.disconnects: why a subscription was lost, from the server's counters read at two
connects and what the socket saw (the integration test test_output_buffer.py does it for real)."""

from __future__ import annotations

import hiredis
import pytest

from tickstock.adapters.redis.disconnects import (
    CONNECTION_LOST, EVICTED, HALF_OPEN, KILLED, OUTPUT_BUFFER_LIMIT, SERVER_CLOSED, SERVER_RESTART, LostConnection,
    ServerCounters, classify,
)

INFO_70 = b"""# Server\r\nredis_version:7.0.15\r\nrun_id:aaa\r\n\r\n# Clients\r\nconnected_clients:3\r\n\r\n# Stats\r
total_connections_received:10\r\nevicted_clients:0\r\npubsub_channels:1\r\n"""
INFO_72 = INFO_70.replace(b"evicted_clients:0", b"evicted_clients:0\r\nclient_output_buffer_limit_disconnections:4")
COMMANDSTATS = b"# Commandstats\r\ncmdstat_ping:calls=3,usec=5,usec_per_call=1.67,rejected_calls=0,failed_calls=0\r\n"
KILLS = COMMANDSTATS + b"cmdstat_client|kill:calls=2,usec=20,usec_per_call=10.00,rejected_calls=0,failed_calls=0\r\n"
LIMITS = [b"client-output-buffer-limit", b"normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"]


def counters(info=INFO_70, stats=COMMANDSTATS, limits=LIMITS) -> ServerCounters:
    return ServerCounters.parse(info, stats, limits=limits)


def lost(kind=SERVER_CLOSED, behind=0, threshold=1 << 20, mean=140.0) -> LostConnection:
    return LostConnection(kind, "server closed the connection", behind, threshold, mean)


def test_parse_reads_the_fields_of_redis_7_0():
    c = counters()
    assert c.run_id == "aaa" and c.evicted_clients == 0
    assert c.output_buffer_disconnections is None  # Redis 7.0 does not count them
    assert c.client_kills == 0  # commandstats answered: a command never called is not listed
    assert c.pubsub_limit == (33554432, 8388608, 60)


def test_parse_reads_the_counter_of_redis_7_2_and_the_kills():
    c = counters(INFO_72, KILLS)
    assert c.output_buffer_disconnections == 4 and c.client_kills == 2


def test_refused_commands_leave_the_figures_unknown():
    refused = hiredis.ReplyError("NOPERM this user has no permissions to run the 'info' command")
    c = ServerCounters.parse(refused, refused, limits=hiredis.ReplyError("ERR unknown command 'CONFIG'"))
    assert c == ServerCounters()


def test_the_counter_of_7_2_confirms_a_slow_reader():
    cause = classify(counters(INFO_72), counters(INFO_72.replace(b"disconnections:4", b"disconnections:5")), lost())
    assert cause.reason == OUTPUT_BUFFER_LIMIT and cause.confirmed
    assert "client_output_buffer_limit_disconnections" in cause.detail
    assert cause.discarded_messages_estimate == int(33554432 / 140.0)
    assert "limit pubsub 32mb 8mb 60" in cause.detail


def test_the_counter_of_7_2_unchanged_is_not_a_slow_reader_even_if_behind():
    cause = classify(counters(INFO_72), counters(INFO_72), lost(behind=5 << 20))
    assert cause.reason == SERVER_CLOSED and not cause.confirmed


def test_the_counter_of_7_2_does_not_name_a_reset_of_a_reader_that_kept_up():
    # server-wide counter: another client's drop must not explain our network fault
    after = counters(INFO_72.replace(b"disconnections:4", b"disconnections:5"))
    assert classify(counters(INFO_72), after, lost(CONNECTION_LOST)).reason == CONNECTION_LOST


def test_without_the_counter_a_reader_behind_is_inferred():
    cause = classify(counters(), counters(), lost(behind=5 << 20))
    assert cause.reason == OUTPUT_BUFFER_LIMIT and not cause.confirmed
    assert "inferred" in cause.detail and "5.0 MiB" in cause.detail
    assert cause.words == "dropped by Redis for a slow reader (output buffer limit)"


def test_a_reader_that_kept_up_is_not_called_slow():
    assert classify(counters(), counters(), lost(behind=64 << 10)).reason == SERVER_CLOSED


def test_a_restart_is_said_as_such():
    assert classify(counters(), counters(INFO_70.replace(b"run_id:aaa", b"run_id:bbb")),
                    lost(behind=5 << 20)).reason == SERVER_RESTART


def test_a_client_kill_and_an_eviction_are_said_as_such():
    assert classify(counters(), counters(stats=KILLS), lost()).reason == KILLED
    evicting = counters(INFO_70.replace(b"evicted_clients:0", b"evicted_clients:1"))
    assert classify(counters(), evicting, lost()).reason == EVICTED


def test_half_open_needs_no_server():
    assert classify(None, None, lost(HALF_OPEN, behind=5 << 20)).reason == HALF_OPEN


def test_unknown_counters_fall_back_to_what_the_socket_saw():
    assert classify(None, None, lost(CONNECTION_LOST)).reason == CONNECTION_LOST
    cause = classify(None, None, lost(behind=2 << 20))
    assert cause.reason == OUTPUT_BUFFER_LIMIT and cause.discarded_messages_estimate is None


@pytest.mark.parametrize("reply", [None, [], [b"client-output-buffer-limit", b"normal 0 0 0"], b"nonsense"])
def test_a_limit_that_cannot_be_read_is_none(reply):
    assert ServerCounters.parse(INFO_70, limits=reply).pubsub_limit is None
