"""tickstock.chart.figure.draw on synthetic data: what the figure holds, not how it looks."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import matplotlib.pyplot as plt
import pytest
from matplotlib.collections import PolyCollection

from tests.unit.chart.synthetic import bars, indicators, pattern
from tickstock.chart.data import assemble
from tickstock.chart.figure import DPI, FIGSIZE, OVERBOUGHT, OVERSOLD, draw


def horizontal_levels(ax) -> list[float]:
    """The y of every horizontal line spanning the axes (axhline)."""
    out = []
    for line in ax.get_lines():
        y = list(line.get_ydata())
        if len(y) == 2 and y[0] == y[1] and list(line.get_xdata()) == [0, 1]:
            out.append(float(y[0]))
    return sorted(out)


@pytest.fixture
def figure():
    series = bars(n=60)
    detections = [pattern(series[5], "Doji"), pattern(series[5], "Hammer", 0.7), pattern(series[30], "HeadShoulders"),
                  pattern(series[45], "Doji", 0.95)]
    fig = draw(assemble("AAPL", "2025-10-07 (America/New_York)", series, detections, indicators(series)))
    yield fig
    plt.close(fig)


def test_headless_backend_whatever_the_environment_asks_for():
    code = "import tickstock.chart.figure, matplotlib; print(matplotlib.get_backend())"
    env = {**os.environ, "MPLBACKEND": "TkAgg"}
    env.pop("DISPLAY", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().lower() == "agg"


def test_one_candle_per_bar(figure):
    price = figure.axes[0]
    bodies = [c for c in price.collections if isinstance(c, PolyCollection)]
    assert len(bodies) == 1 and len(bodies[0].get_paths()) == 60


def test_a_label_per_detection_with_its_name_at_its_bar(figure):
    price = figure.axes[0]
    labels = sorted((t.get_text(), t.xy[0]) for t in price.texts)
    assert labels == [("Doji 85%", 5), ("Doji 95%", 45), ("Hammer 70%", 5), ("HeadShoulders 85%", 30)]


def test_sma_over_the_price(figure):
    price = figure.axes[0]
    (sma,) = [line for line in price.get_lines() if line.get_label() == "SMA 20"]
    assert sum(1 for y in sma.get_ydata() if y == y) == 41  # values from the 20th bar on, NaN before


def test_rsi_panel_below_with_its_70_and_30_lines(figure):
    price, rsi = figure.axes[0], figure.axes[-1]
    assert rsi.get_position().y1 <= price.get_position().y0  # below the price
    assert horizontal_levels(rsi) == [OVERSOLD, OVERBOUGHT] == [30.0, 70.0]
    assert rsi.get_ylim() == (0.0, 100.0)
    (line,) = [line for line in rsi.get_lines() if line.get_label() == "RSI 14"]
    assert sum(1 for y in line.get_ydata() if y == y) == 46
    assert "RSI 14" in rsi.get_ylabel()


def test_title_names_symbol_scope_and_counts(figure):
    title = figure._suptitle.get_text()
    assert title.startswith("AAPL 1-minute bars, 2025-10-07 (America/New_York): 60 bars 2025-10-07T13:30Z")
    assert title.endswith("4 detections")


def test_png_size(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    data = buffer.getvalue()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (int(FIGSIZE[0] * DPI), int(FIGSIZE[1] * DPI))


def test_without_rsi_values_the_panel_still_has_its_lines_and_says_so():
    fig = draw(assemble("AAPL", "x", bars(n=10), [], []))
    rsi = fig.axes[-1]
    assert horizontal_levels(rsi) == [30.0, 70.0]
    assert [t.get_text() for t in rsi.texts] == ["no RSI values stored"]
    assert list(fig.axes[0].texts) == []  # no detection, no label
    plt.close(fig)


def test_no_bars_is_a_clear_error():
    with pytest.raises(ValueError, match="no bars to draw for AAPL"):
        draw(assemble("AAPL", "x", [], [], []))


def test_labels_of_the_same_and_of_neighbouring_bars_do_not_cover_each_other():
    series = bars(n=120)
    detections = [pattern(series[i], name) for i, name in
                  [(50, "Doji"), (50, "Hammer"), (51, "Doji"), (52, "HeadShoulders"), (90, "Doji")]]
    fig = draw(assemble("AAPL", "x", series, detections, []))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_bbox_patch().get_window_extent(renderer) for t in fig.axes[0].texts]
    assert len(boxes) == 5
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b)
    plt.close(fig)
