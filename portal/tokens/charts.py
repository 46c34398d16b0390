"""The dashboard's charts as plain geometry for inline SVG (no script).

Pure: takes day counts, returns rectangles, ticks and labels with their coordinates already
formatted, so the template only places them. Styling is by class (`history.css`), never by a
`style` attribute, which the Content-Security-Policy would block.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tokens.insights import DayStack, DenialsByReason, Split
from tokens.selectors import DayCount

WIDTH = 720
HEIGHT = 220
LEFT = 44  # room for the y-axis labels
RIGHT = 8
TOP = 10
BOTTOM = 26  # room for the date labels
WORDS = {"allow": "allowed", "deny": "denied"}


@dataclass(frozen=True)
class Bar:
    x: str
    y: str
    width: str
    height: str
    kind: str  # "allow" or "deny": the CSS class
    title: str


@dataclass(frozen=True)
class Tick:
    y: str
    label: str


@dataclass(frozen=True)
class DayLabel:
    x: str
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot_left: int
    plot_right: int
    baseline: str
    bars: list[Bar]
    ticks: list[Tick]
    labels: list[DayLabel]
    allowed: int
    denied: int


def _fmt(value: float) -> str:
    return f"{value:.1f}"


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least `value` (and at least 1)."""
    if value <= 1:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def _ticks(top: int, baseline: float, plot_height: float) -> list[Tick]:
    """The y axis: 0, half and the top."""
    return [
        Tick(y=_fmt(baseline - plot_height * value / top), label=str(value))
        for value in sorted({0, top // 2, top})
    ]


def daily_chart(days: Sequence[DayCount], *, label_every: int = 5) -> Chart:
    """Grouped bars per day (allowed, denied), a y axis with 0, half and top, date labels."""
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    baseline = TOP + plot_height
    top = nice_ceiling(max([max(d.allowed, d.denied) for d in days] + [1]))
    slot = plot_width / max(len(days), 1)
    bar_width = max(slot * 0.4, 1.0)
    bars: list[Bar] = []
    labels: list[DayLabel] = []
    for index, day in enumerate(days):
        left = LEFT + index * slot + slot * 0.1
        for offset, kind, count in ((0, "allow", day.allowed), (1, "deny", day.denied)):
            height = plot_height * count / top
            bars.append(
                Bar(
                    x=_fmt(left + offset * bar_width),
                    y=_fmt(baseline - height),
                    width=_fmt(bar_width),
                    height=_fmt(height),
                    kind=kind,
                    title=f"{day.day:%Y-%m-%d}: {count} {WORDS[kind]}",
                )
            )
        if (len(days) - 1 - index) % label_every == 0:
            labels.append(DayLabel(x=_fmt(left + bar_width), label=f"{day.day:%m-%d}"))
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        plot_left=LEFT,
        plot_right=WIDTH - RIGHT,
        baseline=_fmt(baseline),
        bars=bars,
        ticks=_ticks(top, baseline, plot_height),
        labels=labels,
        allowed=sum(d.allowed for d in days),
        denied=sum(d.denied for d in days),
    )


# --- denials by reason, stacked per day --------------------------------------------------------
@dataclass(frozen=True)
class Series:
    """One reason of the stacked chart: its CSS class (`series-<n>`) and total."""

    name: str
    css: str
    total: int


@dataclass(frozen=True)
class StackedChart:
    width: int
    height: int
    plot_left: int
    plot_right: int
    baseline: str
    bars: list[Bar]  # kind is the series' CSS class
    ticks: list[Tick]
    labels: list[DayLabel]
    series: list[Series]
    total: int
    table: list[DayStack]  # the days with a denial, for the table beside the chart


def stacked_chart(data: DenialsByReason, *, label_every: int = 5) -> StackedChart:
    """One bar per day, stacked by reason (the most frequent at the bottom), with its axes."""
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    baseline = TOP + plot_height
    top = nice_ceiling(max([day.total for day in data.days] + [1]))
    slot = plot_width / max(len(data.days), 1)
    bar_width = max(slot * 0.7, 1.0)
    bars: list[Bar] = []
    labels: list[DayLabel] = []
    for index, day in enumerate(data.days):
        left = LEFT + index * slot + slot * 0.15
        bottom = float(baseline)
        for position, count in enumerate(day.counts):
            if not count:
                continue
            height = plot_height * count / top
            bottom -= height
            bars.append(
                Bar(
                    x=_fmt(left),
                    y=_fmt(bottom),
                    width=_fmt(bar_width),
                    height=_fmt(height),
                    kind=f"series-{position}",
                    title=f"{day.day:%Y-%m-%d}: {count} denied, {data.reasons[position]}",
                )
            )
        if (len(data.days) - 1 - index) % label_every == 0:
            labels.append(DayLabel(x=_fmt(left + bar_width / 2), label=f"{day.day:%m-%d}"))
    series = [
        Series(
            name=reason,
            css=f"series-{position}",
            total=sum(day.counts[position] for day in data.days),
        )
        for position, reason in enumerate(data.reasons)
    ]
    return StackedChart(
        width=WIDTH,
        height=HEIGHT,
        plot_left=LEFT,
        plot_right=WIDTH - RIGHT,
        baseline=_fmt(baseline),
        bars=bars,
        ticks=_ticks(top, baseline, plot_height),
        labels=labels,
        series=series,
        total=data.total,
        table=[day for day in data.days if day.total],
    )


# --- top N as horizontal bars ------------------------------------------------------------------
BAR_WIDTH = 240  # the viewBox width of one row's bar


@dataclass(frozen=True)
class BarRow:
    """One issuer or repository: its counts and the widths of its allowed and denied parts."""

    split: Split
    allow_width: str
    deny_x: str
    deny_width: str


def bar_rows(splits: Sequence[Split]) -> list[BarRow]:
    """Rows scaled to the largest total (which fills the bar), allowed then denied."""
    largest = max([split.total for split in splits] + [1])
    rows = []
    for split in splits:
        allow = BAR_WIDTH * split.allowed / largest
        deny = BAR_WIDTH * split.denied / largest
        rows.append(
            BarRow(split=split, allow_width=_fmt(allow), deny_x=_fmt(allow), deny_width=_fmt(deny))
        )
    return rows
