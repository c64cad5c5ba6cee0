"""The benchmark's generated configuration, symbols, history and scenario plans (no services)."""

import pytest

from tickstock.bench.pacing import Burst
from tickstock.bench.sandbox import UNIVERSE_KEY, base_config, bench_config, new_prefix
from tickstock.bench.scenarios import _planned_end, make_plan, whole_minutes
from tickstock.bench.universe import bench_symbols, history
from tickstock.config import ConfigError, validate

TOP = validate(base_config()).universe_symbols("market_leaders:top_500")


def config(**changes):
    kwargs = dict(prefix="bench0badcafe:", dsn="postgresql://root@127.0.0.1:5432/tickstock_bench_x",
                  redis_url="redis://127.0.0.1:6379/0", symbols=["AAPL", "T00001"], spill_dir="/tmp/x/spill",
                  http_port=18080)
    kwargs.update(changes)
    return bench_config(base_config(), **kwargs)


def test_every_channel_and_key_carries_the_prefix():
    cfg = config()
    base = base_config()
    assert cfg["channels"] == {k: "bench0badcafe:" + v for k, v in base["channels"].items()}
    assert cfg["keys"] == {k: "bench0badcafe:" + v for k, v in base["keys"].items()}


def test_the_rest_is_the_run_s_own_and_production_otherwise():
    cfg = config()
    settings = validate(cfg)
    assert settings.database.url.endswith("/tickstock_bench_x")
    assert settings.session.universe == UNIVERSE_KEY and settings.universe_symbols() == ["AAPL", "T00001"]
    assert settings.session.auto_start is False
    assert settings.http.enabled and settings.http.port == 18080 and settings.http.host == "127.0.0.1"
    assert settings.persistence.spill_dir == "/tmp/x/spill"
    base = validate(base_config())
    assert settings.bars == base.bars and settings.analysis == base.analysis
    assert cfg is not base_config() and base_config()["session"]["universe"] == "market_leaders:top_500"


def test_the_day_replay_s_service_closes_bars_by_event_time():
    assert validate(config(clock="event")).session.clock == "event"
    assert validate(config()).session.clock == validate(base_config()).session.clock == "wall"
    with pytest.raises(ConfigError):
        config(clock="sundial")


def test_the_analysis_processes_are_the_run_s_choice_or_config_yaml_s():
    assert validate(config(analysis_processes=1)).analysis.processes == 1
    assert validate(config()).analysis.processes == validate(base_config()).analysis.processes
    with pytest.raises(ConfigError, match="analysis.processes"):
        config(analysis_processes=5)
    assert make_plan("latency", analysis_processes=3).analysis_processes == 3
    assert make_plan("latency").analysis_processes is None


def test_a_bad_config_is_refused_by_the_service_s_schema():
    with pytest.raises(ConfigError):
        config(http_port=0)


def test_prefixes_are_unique():
    assert len({new_prefix() for _ in range(100)}) == 100


def test_symbols_take_the_real_universe_first_then_generated_names():
    assert bench_symbols(3, TOP) == TOP[:3]
    assert bench_symbols(500, TOP) == TOP
    many = bench_symbols(10_000, TOP)
    assert len(many) == len(set(many)) == 10_000
    assert many[:500] == TOP and many[500] == "T00000" and many[-1] == "T09499"
    assert bench_symbols(3, ["T00000"]) == ["T00000", "T00001", "T00002"]
    with pytest.raises(ValueError):
        bench_symbols(0, TOP)
    with pytest.raises(ValueError):
        bench_symbols(1, ["bad symbol"])


def test_history_is_contiguous_and_ends_where_asked():
    last = 1_728_300_000 - 1_728_300_000 % 60
    got = dict(history(["A", "B"], 200, last))
    for bars in got.values():
        assert len(bars) == 200 and bars[-1].start == last
        assert [b.start for b in bars] == list(range(last - 199 * 60, last + 1, 60))
        assert all(b.low <= min(b.open, b.close) and b.high >= max(b.open, b.close) for b in bars)
    assert dict(history(["A", "B"], 200, last)) == got  # deterministic
    with pytest.raises(ValueError):
        next(history(["A"], 1, last + 1))


def test_scenario_defaults():
    latency = make_plan("latency")
    assert (latency.symbols, latency.rate, latency.prime, latency.minutes) == (500, 500.0, True, 2)
    assert make_plan("latency", symbols=3000).rate == 3000.0          # one tick/s/symbol
    throughput = make_plan("throughput", rate=200_000)
    assert (throughput.symbols, throughput.rate, throughput.seconds, throughput.prime) == (500, 200_000, 60.0, False)
    scale = make_plan("scale")
    assert (scale.symbols, scale.rate, scale.prime) == (10_000, 100_000.0, True)
    day = make_plan("day", minutes=20)
    assert (day.rate, day.minutes, day.period_minutes) == (2_000.0, 20, 10)
    assert make_plan("throughput", burst=Burst.parse("4x1/10"), floor=False).burst.factor == 4
    assert make_plan("throughput", rate_of_ceiling=0.7).rate_of_ceiling == 0.7
    with pytest.raises(ValueError):
        make_plan("throughput", rate_of_ceiling=0.7, ceiling=False)
    with pytest.raises(ValueError):
        make_plan("week")
    with pytest.raises(ValueError):
        make_plan("throughput", rate=0)


def test_the_day_is_a_whole_regular_session_replayed_at_60x():
    day = make_plan("day")
    assert (day.symbols, day.rate, day.prime, day.minutes, day.period_minutes) == (500, 2_000.0, False, 390, 30)
    assert (day.date, day.speed, day.day_open) == ("2025-03-12", 60.0, 1_741_786_200.0)  # 13:30Z: 09:30 EDT
    assert make_plan("day", date="2025-01-08").day_open == 1_736_346_600.0                 # 14:30Z: 09:30 EST
    assert make_plan("day", speed=240).speed == 240.0                   # 2,000/s over 500: one tick per bar
    assert make_plan("day", symbols=5000).speed == 12.0                 # lowered: two ticks per bar
    assert make_plan("day", minutes=12, period_minutes=3).period_minutes == 3


@pytest.mark.parametrize("changes, message", [
    (dict(speed=241), "--speed <= 240"),                 # some symbol-minutes would have no tick
    (dict(minutes=391), "1..390"),
    (dict(date="2025-11-28", minutes=300), "1..210"),    # the day after Thanksgiving closes at 13:00
    (dict(date="2025-03-15"), "no XNYS session"),
    (dict(date="2099-03-12"), "closes after now"),
    (dict(period_minutes=390), "--period"),
    (dict(rate_of_ceiling=0.7), "--rate"),
])
def test_a_day_plan_that_cannot_give_every_bar_is_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        make_plan("day", **changes)


def test_speed_and_date_belong_to_the_day():
    with pytest.raises(ValueError, match="--scenario day"):
        make_plan("latency", speed=60)
    with pytest.raises(ValueError, match="--scenario day"):
        make_plan("throughput", date="2025-03-12")


def test_whole_minutes_end_on_a_minute_boundary_after_the_partial_first():
    plan = make_plan("latency", minutes=2)
    until, seconds = _planned_end(plan, 1_728_300_010.0)   # 10 s into a minute
    assert seconds is None and until == 1_728_300_000 - 1_728_300_000 % 60 + 60 * 3
    assert _planned_end(make_plan("throughput", seconds=30), 5.0) == (None, 30)


M = 1_728_300_000 - 1_728_300_000 % 60  # a minute's start


@pytest.mark.parametrize("into", [0.0, 0.3, 0.9, 10.0, 59.4, 59.9])
def test_minutes_n_measures_n_minutes_wherever_in_a_minute_the_feed_starts(into):
    """--minutes 1 measures one minute, also when the feed starts within a second of a minute's start
    (that minute counted as whole as well, two were measured: the smoke test's failure in CI)."""
    plan = make_plan("latency", minutes=1)
    go_at = M + into
    until, _ = _planned_end(plan, go_at)
    started, ended = go_at + 0.05, until - 0.002  # the first and the last batch
    got = whole_minutes(plan, until, started, ended)
    assert len(got) == 1 and got[0] >= started - 1 and got[-1] + 60 <= ended + 1


def test_a_feed_aligned_on_a_boundary_measures_its_minutes_from_it():
    plan = make_plan("latency", minutes=3, extended=True)
    until, _ = _planned_end(plan, M + 0.0005, boundary=M)
    assert until == M + 180
    assert list(whole_minutes(plan, until, M + 0.01, until - 0.01)) == [M, M + 60, M + 120]


def test_only_minutes_the_feed_covered_are_measured():
    plan = make_plan("latency", minutes=3)
    until, _ = _planned_end(plan, M + 10)
    # The generator stalled and started 5 s into the first planned minute: that one is partial.
    assert list(whole_minutes(plan, until, M + 65, until)) == [M + 120, M + 180]
    assert list(whole_minutes(make_plan("throughput", seconds=130), None, M + 10, M + 140)) == [M + 60]


def test_floor_shards_are_parsed_and_need_the_floor():
    from tickstock.bench.__main__ import parse_args

    assert parse_args(["--scenario", "latency", "--floor-shards", "2"]).floor_shards == 2
    assert make_plan("latency").floor_shards == 1 and make_plan("latency", floor_shards=2).floor_shards == 2
    with pytest.raises(ValueError, match="--floor-shards needs a count >= 1 and the inline floor measured"):
        make_plan("latency", floor_shards=2, floor=False)
    with pytest.raises(ValueError, match="--floor-shards"):
        make_plan("latency", floor_shards=0)


@pytest.mark.parametrize("prefix", ["", "bench", "bench:", "tickstock:", "e2e1234abcd:", "bench1234abcd"])
def test_only_a_benchmark_s_own_prefix_can_be_cleared(prefix):
    from tickstock.bench.sandbox import delete_prefixed_keys

    with pytest.raises(ValueError, match="not a benchmark's key prefix"):
        delete_prefixed_keys("redis://127.0.0.1:6379/0", prefix)
