"""Drawing a :class:`ChartData` with mplfinance: candlesticks, detections labelled at their bars,
SMA over the price, RSI in a panel below with its 70/30 lines.

Headless: importing this module selects matplotlib's Agg backend (no display needed). The figure
is ``FIGSIZE`` inches at ``DPI``, so a saved PNG is always ``FIGSIZE * DPI`` pixels.

What the figure holds (tested): the price axes' candle bodies (one per bar), one annotation per
marker whose text starts with the pattern's name, one line per overlay series; the RSI axes with a
line per panel series and horizontal lines at 70 and 30, its y range 0..100.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import mplfinance as mpf  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.transforms import offset_copy  # noqa: E402

from tickstock.chart.data import ChartData, Series  # noqa: E402
from tickstock.messages.wire import iso_utc  # noqa: E402

FIGSIZE = (14.0, 8.0)
DPI = 100
OVERBOUGHT, OVERSOLD = 70.0, 30.0
STYLE = mpf.make_mpf_style(base_mpf_style="yahoo", rc={"font.size": 9})
LABEL_FONT_SIZE = 8
LABEL_ROW_POINTS = 13
MAX_LABEL_LEVELS = 8
LABEL_COLOUR = "#d62728"
_OVERLAY_COLOURS = ("#1f77b4", "#ff7f0e", "#9467bd", "#8c564b")
_PANEL_COLOURS = ("#6a3d9a", "#b15928", "#33a02c")


def _frame(data: ChartData) -> pd.DataFrame:
    index = pd.DatetimeIndex([pd.Timestamp(b.start, unit="s", tz="UTC") for b in data.bars], name="time")
    return pd.DataFrame({"Open": [b.open for b in data.bars], "High": [b.high for b in data.bars],
                         "Low": [b.low for b in data.bars], "Close": [b.close for b in data.bars],
                         "Volume": [b.volume for b in data.bars]}, index=index)


def _dots(series: Series) -> dict:
    """Few values (a short session, gaps): each also drawn as a dot, so a lone value is visible."""
    return {"marker": "o", "markersize": 2.5} if series.count <= 60 else {}


def _values(series_values: tuple[float | None, ...]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in series_values], dtype=float)


def label_levels(labels: list[tuple[float, str]], px_per_unit: float, max_levels: int = MAX_LABEL_LEVELS) -> list[int]:
    """The row of each ``(x, text)`` label in the label lane (0 = lowest): the lowest row on which
    it overlaps no label already placed, its width estimated from its text at ``LABEL_FONT_SIZE``
    (generously), so labels never cover each other until ``max_levels`` rows are full (past that
    they go on the least crowded row)."""
    rows: list[list[tuple[float, float]]] = [[] for _ in range(max_levels)]
    levels = []
    for x, text in labels:
        half = (len(text) * LABEL_FONT_SIZE * 0.62 + 10) * DPI / 72 / px_per_unit / 2
        left, right = x - half, x + half
        free = [i for i, row in enumerate(rows) if not any(left < r and l < right for l, r in row)]
        level = free[0] if free else min(range(max_levels), key=lambda i: len(rows[i]))
        rows[level].append((left, right))
        levels.append(level)
    return levels


def _label(fig: Figure, price, data: ChartData) -> None:
    """Every marker: a triangle over its bar, its label in a lane above the highest bar (stacked
    rows, so labels never cover candles or each other), a thin line from the label to the bar."""
    high = max(b.high for b in data.bars)
    low = min(b.low for b in data.bars)
    span = high - low or abs(high) * 0.01 or 1.0
    box = price.get_position()
    width_px, height_px = box.width * FIGSIZE[0] * DPI, box.height * FIGSIZE[1] * DPI
    xmin, xmax = price.get_xlim()
    levels = label_levels([(m.index, m.label) for m in data.markers], width_px / (xmax - xmin))
    base = high + span * 0.03
    bottom = low - span * 0.03
    # Head room for the rows used: solve (top - base) * height_px / (top - bottom) = needed px.
    rows = max(levels, default=-1) + 1
    share = min(0.6, ((LABEL_ROW_POINTS * rows + 8) * DPI / 72) / height_px) if rows else 0.0
    price.set_ylim(bottom, (base - share * bottom) / (1 - share) if rows else high + span * 0.03)
    for marker, level in zip(data.markers, levels):
        tip = data.bars[marker.index].high + span * 0.005
        price.scatter([marker.index], [tip], marker="v", s=24, color=LABEL_COLOUR, zorder=5)
        lane = offset_copy(price.transData, fig=fig, x=0, y=4 + LABEL_ROW_POINTS * level, units="points")
        price.annotate(marker.label, xy=(marker.index, tip), xytext=(marker.index, base), textcoords=lane,
                       ha="center", va="bottom", fontsize=LABEL_FONT_SIZE, color=LABEL_COLOUR,
                       arrowprops={"arrowstyle": "-", "color": LABEL_COLOUR, "lw": 0.5, "alpha": 0.6},
                       bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": LABEL_COLOUR, "lw": 0.5})


def title_of(data: ChartData) -> str:
    first, last = data.bars[0].start, data.bars[-1].start
    return (f"{data.symbol} 1-minute bars, {data.scope}: {len(data.bars)} bars "
            f"{iso_utc(first)[:16]}Z to {iso_utc(last)[:16]}Z, {len(data.markers)} detections")


def draw(data: ChartData) -> Figure:
    """The chart of ``data`` (which must hold at least one bar; ValueError otherwise)."""
    if not data.bars:
        raise ValueError(f"no bars to draw for {data.symbol}")
    frame = _frame(data)
    fig = mpf.figure(figsize=FIGSIZE, dpi=DPI, style=STYLE)
    grid = fig.add_gridspec(4, 1, hspace=0.08, left=0.06, right=0.94, top=0.93, bottom=0.07)
    price = fig.add_subplot(grid[0:3, 0])
    rsi = fig.add_subplot(grid[3, 0], sharex=price)
    mpf.plot(frame, ax=price, type="candle", datetime_format="%H:%M", xrotation=0, ylabel="price",
             warn_too_much_data=100_000)
    price.tick_params(labelbottom=False)  # the RSI panel below carries the time axis
    x = np.arange(len(data.bars))

    for colour, series in zip(_OVERLAY_COLOURS * 4, data.overlays):
        price.plot(x, _values(series.values), color=colour, linewidth=1.2, label=series.name, **_dots(series))
    if data.overlays:
        price.legend(loc="lower left", fontsize=8)

    _label(fig, price, data)

    for colour, series in zip(_PANEL_COLOURS * 4, data.panel):
        rsi.plot(x, _values(series.values), color=colour, linewidth=1.2, label=series.name, **_dots(series))
    rsi.axhline(OVERBOUGHT, color="#d62728", linestyle="--", linewidth=0.9)
    rsi.axhline(OVERSOLD, color="#2ca02c", linestyle="--", linewidth=0.9)
    rsi.set_ylim(0, 100)
    rsi.set_yticks([0, OVERSOLD, 50, OVERBOUGHT, 100])
    rsi.set_ylabel(" / ".join(s.name for s in data.panel) or "RSI")
    if data.panel:
        rsi.legend(loc="upper left", fontsize=8)
    else:
        rsi.text(0.5, 0.5, "no RSI values stored", transform=rsi.transAxes, ha="center", va="center", color="grey")
    rsi.set_xlabel("time (UTC)")
    fig.suptitle(title_of(data), fontsize=11, fontweight="bold")
    return fig
