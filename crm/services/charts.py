"""Server-drawn charts: the geometry of bars, lines and rings, computed from plain figures.

The templates (crm/templates/_macros/charts.html) only draw what these functions lay out, as
SVG with attributes and CSS classes (the Content-Security-Policy forbids inline styles and
scripts), and always print the same figures as a table. Values are numbers (int or Decimal);
labels are text already translated; a chart's `unit` says how the macro formats a value
("count", "money" with `currency`, "percent", "days").

Coordinates live in a fixed viewBox that the browser scales to the card's width, so a chart
needs no JavaScript to fit a phone or a wide screen.
"""

import math
from dataclasses import dataclass, field
from decimal import Decimal

# One CSS class per series, in this order (crm/static/css/app.css, "Dashboards and reports").
SERIES_CLASSES = tuple(f"series-{i}" for i in range(8))
WIDTH = 600
LABEL_WIDTH = 150  # the category names left of horizontal bars
ROW_HEIGHT = 26
BAR_HEIGHT = 18
AXIS_HEIGHT = 22


def series_class(index: int) -> str:
    return SERIES_CLASSES[index % len(SERIES_CLASSES)]


# ---- scales --------------------------------------------------------------------------------


def nice_number(value: float, round_: bool) -> float:
    """A 1, 2 or 5 times a power of ten near `value` (Heckbert's "nice numbers"):
    rounded to the nearest when `round_`, else the smallest one not below `value`."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    fraction = value / 10**exponent
    if round_:
        nice = 1 if fraction < 1.5 else 2 if fraction < 3 else 5 if fraction < 7 else 10
    else:
        nice = 1 if fraction <= 1 else 2 if fraction <= 2 else 5 if fraction <= 5 else 10
    return nice * 10**exponent


@dataclass(frozen=True)
class Scale:
    """A linear axis from 0 to `top`, with round ticks."""

    top: float
    step: float

    @property
    def ticks(self) -> list[float]:
        count = round(self.top / self.step)
        return [self._clean(self.step * i) for i in range(count + 1)]

    @staticmethod
    def _clean(value: float):
        # 0.30000000000000004 -> 0.3; whole numbers as int so that "1,000" shows no ".0".
        value = round(value, 10)
        return int(value) if float(value).is_integer() else value

    def fraction(self, value) -> float:
        """Where `value` falls between 0 and the top, clamped to [0, 1]."""
        if not self.top or value is None:
            return 0.0
        return max(0.0, min(1.0, float(value) / self.top))


def nice_scale(maximum, ticks: int = 4, integer: bool = False) -> Scale:
    """A scale from 0 whose top is a nice number at or above `maximum`, in about `ticks` steps.
    `integer`: counts never get a step below 1."""
    maximum = float(maximum or 0)
    if maximum <= 0:
        return Scale(top=float(ticks) if integer else 1.0, step=1.0 if integer else 0.25)
    step = nice_number(nice_number(maximum, False) / ticks, True)
    if integer:
        step = max(1.0, math.ceil(step))
    top = math.ceil(maximum / step - 1e-9) * step
    return Scale(top=top, step=step)


def share(part, whole) -> Decimal | None:
    """part / whole in per cent to one decimal, None when whole is 0."""
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"))


# ---- horizontal bars (one series, or stacked series) -----------------------------------------


@dataclass
class Segment:
    """One rectangle: a value of one series in one category."""

    x: float
    width: float
    series: int
    value: object
    css: str


@dataclass
class BarRow:
    label: str
    y: float
    segments: list[Segment]
    total: object
    total_x: float  # where the total is written, after the bar
    link: str | None = None


@dataclass
class BarChart:
    """Horizontal bars, one row per category; several series stack left to right."""

    title: str
    unit: str
    rows: list[BarRow]
    series: list[str]  # series names (one empty name for a single series)
    scale: Scale
    height: float
    currency: str | None = None
    width: int = WIDTH
    label_width: int = LABEL_WIDTH

    @property
    def plot_width(self) -> float:
        return self.width - self.label_width - 70  # room for the total after the longest bar

    @property
    def tick_marks(self) -> list[tuple[float, object]]:
        return [
            (self.label_width + self.scale.fraction(t) * self.plot_width, t)
            for t in self.scale.ticks
        ]

    @property
    def stacked(self) -> bool:
        return len(self.series) > 1

    @property
    def is_empty(self) -> bool:
        return not any(seg.value for row in self.rows for seg in row.segments)


def bar_chart(
    title: str,
    categories: list[str],
    series: list[tuple[str, list]],
    *,
    unit: str = "count",
    currency: str | None = None,
    links: list[str | None] | None = None,
) -> BarChart:
    """Horizontal bars: `categories` (row labels) and `series` ((name, values per category)).

    One series draws plain bars; several stack in each row, in series order, and the row's
    total is written after its bar."""
    totals = [sum((values[i] or 0) for _name, values in series) for i in range(len(categories))]
    scale = nice_scale(max(totals, default=0), integer=unit == "count")
    chart = BarChart(
        title=title,
        unit=unit,
        rows=[],
        series=[name for name, _values in series],
        scale=scale,
        height=len(categories) * ROW_HEIGHT + AXIS_HEIGHT,
        currency=currency,
    )
    for index, label in enumerate(categories):
        x = float(chart.label_width)
        segments = []
        for number, (_name, values) in enumerate(series):
            value = values[index] or 0
            width = scale.fraction(value) * chart.plot_width
            segments.append(
                Segment(round(x, 2), round(width, 2), number, value, series_class(number))
            )
            x += width
        chart.rows.append(
            BarRow(
                label=label,
                y=index * ROW_HEIGHT + (ROW_HEIGHT - BAR_HEIGHT) / 2,
                segments=segments,
                total=totals[index],
                total_x=round(x + 4, 2),
                link=links[index] if links else None,
            )
        )
    return chart


# ---- a line over months (or weeks) -----------------------------------------------------------


@dataclass
class LinePoint:
    x: float
    y: float
    label: str
    value: object


@dataclass
class LineSeries:
    name: str
    css: str
    points: list[LinePoint]

    @property
    def path(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


@dataclass
class LineChart:
    title: str
    unit: str
    labels: list[str]
    series: list[LineSeries]
    scale: Scale
    currency: str | None = None
    width: int = WIDTH
    height: int = 220
    left: int = 60  # room for the tick labels
    bottom: int = 24  # room for the x labels
    top_margin: int = 10

    @property
    def plot_height(self) -> float:
        return self.height - self.bottom - self.top_margin

    @property
    def tick_marks(self) -> list[tuple[float, object]]:
        return [
            (self.top_margin + (1 - self.scale.fraction(t)) * self.plot_height, t)
            for t in self.scale.ticks
        ]

    @property
    def x_labels(self) -> list[tuple[float, str]]:
        """Every label when few, else about eight evenly spread, so that they never overlap."""
        points = self.series[0].points if self.series else []
        every = max(1, math.ceil(len(points) / 8))
        return [(p.x, p.label) for i, p in enumerate(points) if i % every == 0]

    @property
    def is_empty(self) -> bool:
        return not any(p.value for s in self.series for p in s.points)


def line_chart(
    title: str,
    labels: list[str],
    series: list[tuple[str, list]],
    *,
    unit: str = "count",
    currency: str | None = None,
) -> LineChart:
    """One line per series over `labels` (months, weeks), values in label order."""
    top = max((v or 0 for _name, values in series for v in values), default=0)
    chart = LineChart(
        title=title,
        unit=unit,
        labels=labels,
        series=[],
        scale=nice_scale(top, integer=unit == "count"),
        currency=currency,
    )
    plot_width = chart.width - chart.left - 20
    step = plot_width / max(len(labels) - 1, 1)
    for number, (name, values) in enumerate(series):
        points = [
            LinePoint(
                x=round(chart.left + (i * step if len(labels) > 1 else plot_width / 2), 2),
                y=round(
                    chart.top_margin + (1 - chart.scale.fraction(v or 0)) * chart.plot_height, 2
                ),
                label=label,
                value=v or 0,
            )
            for i, (label, v) in enumerate(zip(labels, values, strict=True))
        ]
        chart.series.append(LineSeries(name, series_class(number), points))
    return chart


# ---- progress and rings ---------------------------------------------------------------------


@dataclass
class Progress:
    """A part of a whole (won of a target, met of all): the bar's width, capped at 100 %."""

    label: str
    value: object
    whole: object
    percent: Decimal | None
    width: float  # 0..100, for a viewBox 100 wide
    reached: bool
    unit: str = "count"
    currency: str | None = None


def progress(label: str, value, whole, *, unit: str = "count", currency: str | None = None):
    pct = share(value or 0, whole)
    width = float(min(pct, Decimal(100))) if pct is not None else 0.0
    return Progress(label, value, whole, pct, width, bool(pct and pct >= 100), unit, currency)


RING_RADIUS = 15.915  # a circumference of 100: dash lengths read as per cent


@dataclass
class RingPart:
    name: str
    value: int
    percent: Decimal | None
    dash: float
    offset: float
    css: str


@dataclass
class Ring:
    """A donut: each part's arc length in per cent of the circle."""

    title: str
    parts: list[RingPart] = field(default_factory=list)
    total: int = 0


def ring(title: str, parts: list[tuple[str, int]], classes: list[str] | None = None) -> Ring:
    total = sum(value for _name, value in parts)
    result = Ring(title, total=total)
    start = 0.0
    for index, (name, value) in enumerate(parts):
        fraction = (value / total * 100) if total else 0.0
        css = classes[index] if classes else series_class(index)
        # SVG draws a circle's stroke from 3 o'clock; offset 25 moves the start to noon.
        result.parts.append(
            RingPart(
                name, value, share(value, total), round(fraction, 3), round(25 - start, 3), css
            )
        )
        start += fraction
    return result
