"""End-to-end: the close analysis in its own process (``analysis.process: true``, the default), seen
from outside as an operator sees it: a child process of the service; killed with -9, restarted by
the session with every TA-Lib value still published once (found between closes by the actor's
timer; killed in a burst of closes, the close it died in analysed again); gone when the service
stops, however it stops.
"""

from __future__ import annotations

import contextlib
import glob
import os
import signal
import time

import pytest
import redis

from tests.e2e.harness import REDIS_URL, Service, Watcher, e2e_config, write_config
from tests.e2e.test_timeframes import OPEN, SYMBOLS, execute, generate_day
from tests.pids import gone
from tickstock.messages.ticks import encode_tick

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

CHILD_MODULE = "tickstock.actors.analysis_process"


def analysis_processes(service_pid: int) -> list[int]:
    """The service's children running the analysis process."""
    found = []
    for path in glob.glob(f"/proc/{service_pid}/task/*/children"):
        try:
            pids = open(path).read().split()
        except FileNotFoundError:
            continue
        for pid in pids:
            try:
                cmdline = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            except FileNotFoundError:
                continue
            if CHILD_MODULE.encode() in cmdline:
                found.append(int(pid))
    return sorted(set(found))


def wait(predicate, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.1)
    return predicate()


def ema_values(watcher: Watcher, timeframe: str = "1min") -> list[str]:
    """The bar of every EMA value published on ``timeframe``, in the order received (per symbol)."""
    return [e["calculation"]["metadata"]["bar_timestamp"] for e in watcher.on("indicators")
            if e["calculation"]["indicator"] == "EMA" and e["calculation"]["timeframe"] == timeframe]


def ema_bars(watcher: Watcher, timeframe: str = "1min") -> set[str]:
    return set(ema_values(watcher, timeframe))


def minute_iso(t: float) -> str:
    return f"{time.strftime('%Y-%m-%dT%H:%M', time.gmtime(t))}:00.000Z"


def assert_every_bar_once(watcher: Watcher, first: float, last: float, step: int = 60, timeframe: str = "1min") -> None:
    """Every bar from ``first`` to ``last`` has exactly one EMA value per symbol: none lost to a
    restart, none published twice by a redo."""
    values = ema_values(watcher, timeframe)
    expected = [minute_iso(t) for t in range(int(first), int(last) + 1, step)]
    missing = [m for m in expected if values.count(m) < len(SYMBOLS)]
    twice = sorted({m for m in values if values.count(m) > len(SYMBOLS)})
    assert not missing and not twice, (timeframe, missing, twice)


@contextlib.contextmanager
def running(tmp_path, database, timeframes: str = "{intraday}", **settings):
    """The service over SYMBOLS in event time with EMA (period 4) on ``timeframes``."""
    execute(database, "UPDATE indicator_definitions SET enabled = true, period = 4, parameters = '{}', "
                      f"applicable_timeframes = '{timeframes}' WHERE name = 'EMA'")
    _, cfg = e2e_config(tmp_path, database, **{"session.clock": "event", **settings})
    cfg["universes"] = {"test:e2e": list(SYMBOLS)}
    config = write_config(tmp_path / "service", cfg)
    watcher = Watcher(cfg["channels"])
    client = redis.Redis.from_url(REDIS_URL)
    service = Service(config)
    try:
        watcher.wait_for("session_started", timeout=60)
        yield service, watcher, client, cfg
    finally:
        if service.proc.poll() is None:
            service.kill()
        watcher.close()
        client.close()


@pytest.fixture(params=[True], ids=["process"])
def service_with_talib(request, tmp_path, database):
    with running(tmp_path, database, **{"analysis.process": request.param}) as started:
        yield started


def publish(client: redis.Redis, cfg: dict, ticks) -> None:
    pipe = client.pipeline(transaction=False)
    for symbol, px, vol, ts in ticks:
        pipe.publish(cfg["channels"]["ticks"], encode_tick(symbol, px, vol, ts, source="e2e-process"))
    pipe.execute()


def test_a_killed_analysis_process_is_restarted_and_the_values_go_on_and_a_stop_leaves_no_process(
        service_with_talib) -> None:
    service, watcher, client, cfg = service_with_talib
    [child] = analysis_processes(service.proc.pid)
    ticks = [t for t in generate_day(5) if t[3] < OPEN + 40 * 60]
    publish(client, cfg, [t for t in ticks if t[3] < OPEN + 20 * 60])
    assert wait(lambda: len(ema_bars(watcher)) >= 10), service.log()[-3000:]

    # Between closes: the actor's timer finds the death, and the analysis is restarted (and primed)
    # before anything else arrives.
    os.kill(child, signal.SIGKILL)
    assert gone(child)
    assert wait(lambda: "restarted analysis (incarnation 2)" in service.log(), timeout=15), service.log()[-3000:]
    assert wait(lambda: len(analysis_processes(service.proc.pid)) == 1)
    [second] = analysis_processes(service.proc.pid)
    assert second != child

    # In a burst of closes: killed while they are analysed (in a close, or between two with more
    # queued), the close it died in is analysed again and the queued ones are analysed, not primed.
    publish(client, cfg, [t for t in ticks if t[3] >= OPEN + 20 * 60])
    assert wait(lambda: minute_iso(OPEN + 21 * 60) in ema_bars(watcher)), sorted(ema_bars(watcher))[-5:]
    os.kill(second, signal.SIGKILL)
    assert wait(lambda: "restarted analysis (incarnation 3)" in service.log(), timeout=15), service.log()[-3000:]
    assert wait(lambda: minute_iso(OPEN + 38 * 60) in ema_bars(watcher)), sorted(ema_bars(watcher))[-5:]
    assert_every_bar_once(watcher, OPEN + 3 * 60, OPEN + 38 * 60)  # EMA(4): from the fourth bar

    assert service.terminate(30) == 0
    assert all(gone(pid) for pid in analysis_processes(service.proc.pid) + [second])
    log = service.log()
    assert "analysis process is gone" in log and "exit code -9" in log
    [stopped] = watcher.on("session_stopped")
    assert stopped["session"]["final_status"] != "failed", log[-3000:]


def test_the_analysis_process_ends_when_the_service_is_killed(service_with_talib) -> None:
    service, _, _, _ = service_with_talib
    [child] = analysis_processes(service.proc.pid)
    service.kill()
    assert gone(child)


@pytest.mark.parametrize("service_with_talib", [False], ids=["thread"], indirect=True)
def test_with_analysis_process_false_it_runs_on_a_thread_of_the_service(service_with_talib) -> None:
    service, watcher, client, cfg = service_with_talib
    assert analysis_processes(service.proc.pid) == []
    publish(client, cfg, [t for t in generate_day(5) if t[3] < OPEN + 12 * 60])
    assert wait(lambda: len(ema_bars(watcher)) >= 5), service.log()[-3000:]
    assert analysis_processes(service.proc.pid) == []
    assert "once per close, in process" not in service.log()
    assert service.terminate(30) == 0


def test_split_over_two_processes_a_killed_one_restarts_both_and_every_timeframe_goes_on(tmp_path, database) -> None:
    with running(tmp_path, database, "{intraday,5min}", **{"analysis.processes": 2}) as (service, watcher, client, cfg):
        first = analysis_processes(service.proc.pid)
        assert len(first) == 2, service.log()[-3000:]
        assert f"in processes {first[0]}, {first[1]}" in service.log() or \
            f"in processes {first[1]}, {first[0]}" in service.log()
        ticks = [t for t in generate_day(5) if t[3] < OPEN + 40 * 60]
        publish(client, cfg, [t for t in ticks if t[3] < OPEN + 20 * 60])
        assert wait(lambda: len(ema_bars(watcher)) >= 10 and len(ema_bars(watcher, "5min")) >= 1), \
            service.log()[-3000:]

        os.kill(first[1], signal.SIGKILL)
        assert gone(first[1])
        # Found between closes by the actor's timer: both processes replaced before the next close.
        assert wait(lambda: "restarted analysis (incarnation 2)" in service.log(), timeout=15), service.log()[-3000:]
        assert wait(lambda: len(analysis_processes(service.proc.pid)) == 2)
        second = analysis_processes(service.proc.pid)
        assert not set(second) & set(first) and all(gone(pid) for pid in first)  # both replaced
        publish(client, cfg, [t for t in ticks if t[3] >= OPEN + 20 * 60])
        late = minute_iso(OPEN + 38 * 60)
        assert wait(lambda: late in ema_bars(watcher) and minute_iso(OPEN + 30 * 60) in ema_bars(watcher, "5min")), \
            (sorted(ema_bars(watcher))[-3:], sorted(ema_bars(watcher, "5min"))[-3:])
        assert_every_bar_once(watcher, OPEN + 3 * 60, OPEN + 38 * 60)
        assert_every_bar_once(watcher, OPEN + 15 * 60, OPEN + 30 * 60, step=300, timeframe="5min")
        assert service.terminate(30) == 0
        assert all(gone(pid) for pid in second)
