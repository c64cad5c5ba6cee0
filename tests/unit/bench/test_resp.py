"""The load generator's pre-encoded PUBLISH commands: byte-exact RESP, valid ticks once stamped."""

import hiredis
import pytest
from redis.connection import Encoder, PythonRespSerializer

from tickstock.bench.loadgen import ReplyCounter
from tickstock.bench.resp import (
    TS_MARK, TickCommands, command, format_timestamp, publish_command, stamp, tick_payload,
)
from tickstock.messages.ticks import decode_tick


def redis_py_pack(*args) -> bytes:
    serializer = PythonRespSerializer(6000, Encoder("utf-8", "strict", False).encode)
    return b"".join(serializer.pack(*args))


def test_command_is_hand_written_resp():
    assert command("PUBLISH", "ch", b"hi") == b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$2\r\nhi\r\n"
    assert command("PING") == b"*1\r\n$4\r\nPING\r\n"
    assert command(b"SELECT", 3) == b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"


def test_command_counts_bytes_not_characters():
    assert command("PUBLISH", "kanał", "é") == "*3\r\n$7\r\nPUBLISH\r\n$6\r\nkanał\r\n$2\r\né\r\n".encode()


@pytest.mark.parametrize("payload", [b"", b"x", b"a\r\nb", b"\x00\xff" * 300, b"y" * 10_000])
def test_publish_command_matches_redis_py_and_hiredis(payload):
    expected = redis_py_pack("PUBLISH", "bench1234abcd:tickstock:market:ticks", payload)
    assert publish_command("bench1234abcd:tickstock:market:ticks", payload) == expected
    assert publish_command("bench1234abcd:tickstock:market:ticks", payload) == hiredis.pack_command(
        ("PUBLISH", "bench1234abcd:tickstock:market:ticks", payload))


def test_format_timestamp_is_fixed_width():
    assert format_timestamp(1728300000.1234) == b"1728300000.123"
    assert len(format_timestamp(1e9)) == len(TS_MARK) == len(format_timestamp(9_999_999_999.9994))
    with pytest.raises(ValueError):
        format_timestamp(999_999_999.0)   # 2001: one digit short
    with pytest.raises(ValueError):
        format_timestamp(1e10)            # 2286


def test_stamped_tick_is_a_contract_tick():
    raw = stamp(tick_payload("BRK.B", 257.01, 150), 1728300000.123)
    assert raw == (b'{"type":"market_tick","symbol":"BRK.B","price":257.01,"volume":150,'
                   b'"timestamp":1728300000.123,"source":"bench"}')
    tick = decode_tick(raw, 1728300000.5)
    assert (tick.symbol, tick.price, tick.volume, tick.timestamp) == ("BRK.B", 257.01, 150, 1728300000.123)


def test_stamping_a_whole_batch_keeps_the_bulk_lengths_right():
    ticks = TickCommands("c", ["AAPL", "MSFT", "T00001"], variants=5)
    batch = stamp(ticks.take(0, 15), 1728300000.5)
    reader = hiredis.Reader()
    reader.feed(batch)
    commands = []
    while (reply := reader.gets()) is not False:
        commands.append(reply)
    assert len(commands) == 15
    for j, (verb, channel, payload) in enumerate(commands):
        assert (verb, channel) == (b"PUBLISH", b"c")
        tick = decode_tick(payload, 1728300001.0)
        assert tick.symbol == ["AAPL", "MSFT", "T00001"][j % 3]
        assert tick.timestamp == 1728300000.5 and tick.volume == 1


def test_take_goes_round_robin_and_wraps_the_cycle():
    ticks = TickCommands("c", ["A", "B"], variants=3)
    assert ticks.cycle == 6
    one_by_one = b"".join(ticks.take(j, 1) for j in range(9))
    assert ticks.take(0, 9) == one_by_one
    assert ticks.take(4, 5) == b"".join(ticks.take(j % 6, 1) for j in range(4, 9))
    assert ticks.take(6, 2) == ticks.take(0, 2)


def test_each_symbol_walks_its_own_prices_without_a_jump_at_the_wrap():
    ticks = TickCommands("c", ["A"], variants=64)
    prices = [decode_tick(stamp(ticks.take(j, 1), 1.7e9).split(b"\r\n")[-2], 1.7e9).price for j in range(64)]
    steps = [abs(b / a - 1) for a, b in zip(prices, prices[1:] + prices[:1])]
    assert len(set(prices)) > 10 and max(steps) < 0.01


def test_reply_counter_across_cut_reads():
    stream = b":1\r\n:0\r\n:12\r\n:0\r\n:10\r\n:0\r\n"
    for cut in range(1, len(stream)):
        counter = ReplyCounter()
        counter.feed(stream[:cut])
        counter.feed(stream[cut:])
        assert (counter.replies, counter.zero) == (6, 3), cut


def test_reply_counter_keeps_the_first_error():
    counter = ReplyCounter()
    counter.feed(b":1\r\n-NOAUTH Authentication required.\r\n:1\r\n")
    assert counter.first_error == "-NOAUTH Authentication required." and counter.replies == 3


def test_generate_sends_the_schedule_stamped_and_hears_the_replies():
    import socket
    import threading
    import time

    from tickstock.bench.loadgen import LoadSpec, generate

    ours, server = socket.socketpair()
    got = []

    def redis_side():  # answers every PUBLISH as Redis would, 1 receiver (0 for the first two)
        reader = hiredis.Reader()
        while True:
            data = server.recv(1 << 16)
            if not data:
                return
            reader.feed(data)
            replies = b""
            while (cmd := reader.gets()) is not False:
                got.append((cmd, time.time()))
                replies += b":0\r\n" if len(got) <= 2 else b":1\r\n"
            server.sendall(replies)

    thread = threading.Thread(target=redis_side, daemon=True)
    thread.start()
    spec = LoadSpec("redis://unused", "ch", ["AAPL", "MSFT"], rate=2000, seconds=0.5)
    ticks = TickCommands("ch", spec.symbols, variants=4)
    started = time.monotonic()
    result = generate(ours, ticks, spec)
    took = time.monotonic() - started
    ours.close()
    thread.join(2)
    server.close()
    assert result.sent == len(got) == 1000 and result.replies == 1000 and result.unheard == 2
    assert 0.45 < took < 1.5 and sum(result.per_second.values()) == 1000
    stamps = [decode_tick(p, t).timestamp for (_, _, p), t in got]
    assert max(stamps) - min(stamps) < 0.5  # a batch goes when its first tick is due: all within the run
    for (verb, channel, payload), received in got:
        tick = decode_tick(payload, received)
        assert (verb, channel) == (b"PUBLISH", b"ch") and abs(received - tick.timestamp) < 0.5
    assert [decode_tick(p, t).symbol for (_, _, p), t in got[:4]] == ["AAPL", "MSFT", "AAPL", "MSFT"]


def test_generate_in_event_time_stamps_each_batch_open_plus_wall_elapsed_times_speed_until_the_close():
    import socket
    import threading
    import time

    from tickstock.bench.loadgen import LoadSpec, generate

    ours, server = socket.socketpair()
    got = []

    def redis_side():
        reader = hiredis.Reader()
        while data := server.recv(1 << 16):
            reader.feed(data)
            n = 0
            while (cmd := reader.gets()) is not False:
                got.append((cmd, time.time()))
                n += 1
            server.sendall(b":1\r\n" * n)

    thread = threading.Thread(target=redis_side, daemon=True)
    thread.start()
    day_open = 1_741_786_200.0  # 2025-03-12 13:30Z; ten event minutes at 3,000x: 0.2 s of wall time
    spec = LoadSpec("redis://unused", "ch", ["AAPL", "MSFT", "NVDA"], rate=5000, event_open=day_open,
                    speed=3000.0, event_until=day_open + 600)
    ticks = TickCommands("ch", spec.symbols, variants=4)
    starts = []
    result = generate(ours, ticks, spec, on_start=starts.append)
    ours.close()
    thread.join(2)
    server.close()
    stamps = [decode_tick(p, t, max_skew_seconds=float("inf")).timestamp for (_, _, p), t in got]
    assert result.sent == len(got) and 700 < result.sent < 1300
    assert starts == [result.started_at]                                   # t0: the first batch, once
    assert stamps[0] == result.first_stamp == day_open                     # the replay starts at the open
    assert stamps == sorted(stamps)                                        # in time order
    assert result.last_stamp == stamps[-1] < day_open + 600 and stamps[-1] > day_open + 400  # stopped at the close
    batch = round(spec.rate * spec.batch_seconds)                          # 25 ticks a batch, one stamp each
    assert len(set(stamps)) <= -(-len(stamps) // batch)
    for (_, _, payload), received in got:  # each stamp: open + (send wall - t0) x speed, sent before received
        stamp_ = decode_tick(payload, received, max_skew_seconds=float("inf")).timestamp
        assert stamp_ <= day_open + (received - result.started_at) * spec.speed + 0.001
