from tickstock.messages.bars import Bar
from tickstock.messages.records import HealthRecord, IndicatorRecord, PatternRecord, SessionRecord
from tickstock.messages.spill import decode_rows, encode_rows

import pytest


def test_every_record_type_round_trips_exactly(tmp_path):
    rows = [
        Bar("BRK.B", 1_795_738_920, 1.5, 2.0, 1.0, 1.75, 10**12, 7),
        PatternRecord("AAPL", "Doji", 0.85, 1_795_738_982.25, {"bar_timestamp": "x", "n": [1, 2]},
                      1_795_742_582.25, (1.0, 2.5), {"session_id": "s"}),
        IndicatorRecord("MSFT", "RSI", 71.25, 1_795_738_982.5, {"value": 71.25}, None, {"period": 14}),
        SessionRecord("s", "test:tiny", 1.0, 3, 2.0, 4, 5, "stopped"),
        HealthRecord("s", 3.0, "warning", 2, 18.5, 60.0, None, 1, 2, {"issues": ["x"]}),
    ]
    path = tmp_path / "spill.jsonl"
    path.write_bytes(encode_rows(rows))
    assert list(decode_rows(path)) == rows


def test_a_bad_line_names_the_file_and_line(tmp_path):
    path = tmp_path / "spill.jsonl"
    path.write_bytes(encode_rows([Bar("A", 60, 1, 1, 1, 1, 1)]) + b'{"kind": "Nope", "row": {}}\n')
    with pytest.raises(ValueError, match=r"spill.jsonl:2"):
        list(decode_rows(path))


def test_new_fields_round_trip_and_old_lines_take_the_defaults(tmp_path):
    from tickstock.messages.spill import decode_line, encode_row

    part = Bar("AAPL", 1_795_738_920, 1.0, 2.0, 0.5, 1.5, 10, 2, session_id="s", first_tick_at=1.5,
               last_tick_at=59.5, partial=True)
    assert decode_line(encode_row(part)) == part
    old = b'{"kind": "Bar", "row": {"symbol": "A", "start": 60, "open": 1, "high": 1, "low": 1, "close": 1, "volume": 1}}\n'
    assert decode_line(old) == Bar("A", 60, 1, 1, 1, 1, 1)
    record = PatternRecord("AAPL", "Doji", 0.5, 1.0, {}, None, (1.0,), row_id="fixed-id")
    back = decode_line(encode_row(record))
    assert back.row_id == "fixed-id" and back.levels == (1.0,) and isinstance(back.levels, tuple)


def test_a_line_cut_short_is_refused_not_misread():
    from tickstock.messages.spill import decode_line, encode_row

    line = encode_row(Bar("A", 60, 1, 1, 1, 1, 1))
    with pytest.raises(ValueError):
        decode_line(line[:-1])  # whole JSON, newline missing: the write did not finish
    with pytest.raises(ValueError):
        decode_line(line[: len(line) // 2] + b"\n")
    with pytest.raises(ValueError):
        encode_row(object())


def test_a_line_is_the_json_of_the_records_fields_exactly_as_asdict_gives_them():
    import dataclasses

    import msgspec
    import orjson

    from tickstock.messages.spill import encode_row

    rows = [
        Bar("BRK.B", 1_795_738_920, 1.5, 2.0, 1.0, 1.75, 10**12, 7, session_id="s", first_tick_at=1.0,
            last_tick_at=2.0, partial=True),
        PatternRecord("AAPL", "Doji", 0.85, 1.25, {"n": [1, {"x": 2}]}, None, (1.0, 2.5), {"session_id": "s"}),
        IndicatorRecord("MSFT", "RSI", 71.25, 1.5, {"value": 71.25}, 2.5, {"period": 14}),
        SessionRecord("s", "test:tiny", 1.0, 3, 2.0, 4, 5, "stopped"),
        HealthRecord("s", 3.0, "warning", 2, 18.5, 60.0, None, 1, 2, {"issues": ["x"]}),
    ]
    for row in rows:
        fields = msgspec.structs.asdict(row) if isinstance(row, msgspec.Struct) else dataclasses.asdict(row)
        expected = orjson.dumps({"kind": type(row).__name__, "row": fields}) + b"\n"
        assert encode_row(row) == expected
