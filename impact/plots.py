"""Figures for the report: one ``plot_*(data, ax=None) -> Axes`` per figure.

Never shows a window: the Agg backend is selected, and figures are saved by
the caller (:mod:`impact.report`) with :func:`save`, which writes a PNG and an SVG.

Fonts
-----
Security names can be Korean ("SK하이닉스", "삼성전자"), which DejaVu Sans, matplotlib's
default font, has no glyphs for: they would render as boxes. The NanumGothic files
shipped by the ``koreanize-matplotlib`` package are therefore registered with
matplotlib's font manager by :func:`setup_fonts`. That package is never *imported*
(importing it rewrites the global ``rcParams``); its directory is located with
:func:`importlib.util.find_spec`, which does not execute it.

The font family is a list, ``["DejaVu Sans", "NanumGothic"]``: matplotlib (>= 3.6)
falls back glyph by glyph, so Latin text keeps DejaVu Sans and Hangul comes from
NanumGothic. This setting, with the SVG settings for reproducible files, is applied
only inside :func:`matplotlib.rc_context` while impact builds and saves its own
figures (see :func:`rc_params`): the user's global ``rcParams`` are never changed.
The one global effect is that the font files are added to ``fontManager`` (additive,
and only once).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import unicodedata
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import polars as pl
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
#: Colours of event categories in the timeline: red is kept for confounders.
_CATEGORY_COLORS = ["#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf",
                    "#7f7f7f", "#bcbd22"]
_CONFOUNDER_COLOR = "#d62728"
_SHADE_COLORS = ["#f2c14e", "#9ecae1"]

_LATIN_FAMILY = "DejaVu Sans"
#: Families with Hangul, by preference: the bundled NanumGothic first, then fonts a
#: system may have installed (used only when the bundled files are missing).
_KOREAN_FAMILIES: tuple[str, ...] = (
    "NanumGothic", "Noto Sans CJK KR", "Noto Sans KR", "Malgun Gothic",
    "Apple SD Gothic Neo", "AppleGothic", "UnDotum", "Baekmuk Gulim")
#: Fixed salt for the ids matplotlib writes into SVGs, so that files are reproducible.
SVG_HASHSALT = "impact"

_family: list[str] | None = None  # set once by setup_fonts()

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _bundled_font_files() -> list[Path]:
    """The NanumGothic ``.ttf`` files of koreanize-matplotlib, without importing it."""
    try:
        spec = importlib.util.find_spec("koreanize_matplotlib")
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    fonts = Path(next(iter(spec.submodule_search_locations))) / "fonts"
    return sorted(fonts.glob("*.ttf")) if fonts.is_dir() else []


def _installed_korean_family() -> str | None:
    """The first family of ``_KOREAN_FAMILIES`` the font manager knows, if any."""
    known = {entry.name for entry in font_manager.fontManager.ttflist}
    return next((f for f in _KOREAN_FAMILIES if f in known), None)


def setup_fonts() -> None:
    """Register the Korean fonts with matplotlib, once; never fails.

    Adds koreanize-matplotlib's NanumGothic files to ``matplotlib.font_manager.fontManager``
    and chooses the font family list used by impact's figures: DejaVu Sans for Latin
    text, with per-glyph fallback to NanumGothic (or another installed Korean font) for
    Hangul. Global ``rcParams`` are not changed; the family is applied by
    :func:`rc_params` inside impact's own figures. Calls after the first do nothing.

    Warns (``UserWarning``) when the font files are missing or unreadable; the figures
    are still drawn, with a system Korean font if there is one, else with boxes for Hangul.
    """
    global _family
    if _family is not None:
        return
    files = _bundled_font_files()
    problems: list[str] = []
    for path in files:
        try:
            font_manager.fontManager.addfont(str(path))
        except (OSError, RuntimeError, ValueError) as exc:
            problems.append(f"{path.name}: {exc}")
    if not files or problems:
        detail = "; ".join(problems) if problems else "no font files found"
        warnings.warn(
            "impact.plots: the NanumGothic fonts of koreanize-matplotlib could not be "
            f"registered ({detail}); Korean names may render as boxes. "
            "Install them with `pip install koreanize-matplotlib`.",
            UserWarning, stacklevel=2)
    korean = _installed_korean_family()
    _family = [_LATIN_FAMILY] if korean is None else [_LATIN_FAMILY, korean]


def rc_params() -> dict[str, Any]:
    """The ``rcParams`` impact applies (temporarily) to the figures it makes and saves.

    For use as ``with matplotlib.rc_context(impact.plots.rc_params()): ...`` to give a
    figure of one's own the same fonts.

    Returns
    -------
    dict
        ``font.family`` (DejaVu Sans with a Korean fallback, see :func:`setup_fonts`),
        ``svg.fonttype`` (text as paths, so SVGs need no installed fonts) and a fixed
        ``svg.hashsalt`` (reproducible SVG ids).
    """
    setup_fonts()
    return {"font.family": list(_family or [_LATIN_FAMILY]), "svg.fonttype": "path",
            "svg.hashsalt": SVG_HASHSALT}


@contextlib.contextmanager
def _impact_rc() -> Iterator[dict[str, Any]]:
    """Apply :func:`rc_params` for the duration of the block (and yield them)."""
    rc = rc_params()
    with matplotlib.rc_context(rc):  # type: ignore[arg-type]  # stubs want literal keys
        yield rc


def _num(ts: datetime) -> float:
    """Matplotlib's date number of an instant (naive instants are taken as UTC)."""
    return float(mdates.date2num(ts))  # type: ignore[no-untyped-call]


def _styled(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run a ``plot_*`` function inside :func:`rc_params`' context.

    Texts take their font family when they are created, so titles and labels drawn
    here keep the Korean fallback after the context ends. The title and axis labels of
    an Axes passed in by the caller were created earlier, under the caller's settings:
    their family is set explicitly.
    """
    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with _impact_rc() as rc:
            out = fn(*args, **kwargs)
        if isinstance(out, Axes):
            for text in (out.title, out.xaxis.label, out.yaxis.label):
                text.set_fontfamily(rc["font.family"])
        return out
    return wrapper


def _new_ax(ax: Axes | None, size: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    _fig, new = plt.subplots(figsize=size, dpi=110)
    return new


def _shade_closures(ax: Axes, closures: dict[str, list[tuple[datetime, datetime]]]) -> None:
    """Shade each exchange's closed spans, one colour and one legend entry per exchange."""
    for j, (label, spans) in enumerate(closures.items()):
        for k, (start, end) in enumerate(spans):
            ax.axvspan(_num(start), _num(end), color=_SHADE_COLORS[j % 2], alpha=0.35,
                       lw=0, label=f"{label} closed" if k == 0 else None)


@_styled
def plot_car_paths(ars: pl.DataFrame, labels: dict[str, str], ax: Axes | None = None, *,
                   title: str = "Cumulative abnormal returns") -> Axes:
    """Cumulative abnormal return by relative day, one line per security, with 95% bands.

    Parameters
    ----------
    ars
        Rows of ``abnormal_returns`` for one event and model: ticker, rel_day, car, car_se.
    labels
        Ticker -> label for the legend.
    ax
        Axes to draw on (a new figure when None).
    title
        Title of the axes.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.
    """
    ax = _new_ax(ax, (8, 4.5))
    for i, (tk, g) in enumerate(ars.sort("rel_day").partition_by("ticker", as_dict=True).items()):
        g = g.filter(pl.col("car").is_not_null())
        x = g["rel_day"].to_list()
        car = [v * 100 for v in g["car"].to_list()]
        se = [v * 100 for v in g["car_se"].to_list()]
        color = _COLORS[i % len(_COLORS)]
        ax.plot(x, car, marker="o", ms=3, color=color, label=labels.get(str(tk[0]), str(tk[0])))
        ax.fill_between(x, [c - 1.96 * s for c, s in zip(car, se, strict=True)],
                        [c + 1.96 * s for c, s in zip(car, se, strict=True)],
                        color=color, alpha=0.15, lw=0)
    ax.axhline(0, color="black", lw=0.8)
    ax.axvline(0, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("sessions relative to day 0 (each security's own exchange)")
    ax.set_ylabel("CAR, % (95% band)")
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    return ax


@_styled
def plot_ar_bars(ars: pl.DataFrame, labels: dict[str, str], ax: Axes | None = None, *,
                 title: str = "Abnormal returns around day 0") -> Axes:
    """Abnormal return by relative day as grouped bars, one colour per security, 95% error bars.

    Parameters
    ----------
    ars
        Rows of ``abnormal_returns`` for one event and model: ticker, rel_day, ar, se
        (decimal fractions). A row whose ``ar`` is null draws no bar; a row whose ``se``
        is null draws its bar without an error bar.
    labels
        Ticker -> label for the legend.
    ax
        Axes to draw on (a new figure when None).
    title
        Title of the axes.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on; the error bars are ±1.96 standard errors.
    """
    ax = _new_ax(ax, (9, 4.5))
    groups = ars.sort("rel_day").partition_by("ticker", as_dict=True, maintain_order=True)
    width = 0.8 / max(len(groups), 1)
    for i, (tk, g) in enumerate(groups.items()):
        name = str(tk[0])
        g = g.filter(pl.col("ar").is_not_null() & pl.col("rel_day").is_not_null())
        offset = (i - (len(groups) - 1) / 2) * width
        x = [d + offset for d in g["rel_day"].to_list()]
        color = _COLORS[i % len(_COLORS)]
        ax.bar(x, g["ar"].to_list(), width=width, color=color, label=labels.get(name, name),
               zorder=2)
        with_se = [(xi, a, s) for xi, a, s in zip(x, g["ar"].to_list(), g["se"].to_list(),
                                                  strict=True) if s is not None]
        if with_se:
            ax.errorbar([w[0] for w in with_se], [w[1] for w in with_se],
                        yerr=[1.96 * w[2] for w in with_se], fmt="none", ecolor="#333333",
                        elinewidth=0.8, capsize=2, zorder=3)
    days = sorted(set(ars["rel_day"].drop_nulls().to_list()))
    if days and len(days) <= 21:
        ax.set_xticks(days)
    else:
        ax.xaxis.set_major_locator(mticker.MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(mticker.PercentFormatter(xmax=1.0))
    ax.axhline(0, color="black", lw=0.8)
    ax.axvline(0, color="grey", ls="--", lw=0.8, zorder=1)
    ax.set_xlabel("sessions relative to day 0 (each security's own exchange)")
    ax.set_ylabel("AR, % (95% error bars)")
    ax.set_title(title)
    if groups:
        ax.legend(loc="best", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return ax


@_styled
def plot_indexed_prices(
    series: dict[str, tuple[list[datetime], list[float | None]]],
    closures: dict[str, list[tuple[datetime, datetime]]],
    events: list[tuple[datetime, str]],
    ax: Axes | None = None,
) -> Axes:
    """Prices indexed to 100 in calendar time (UTC), closed days shaded, events marked.

    Parameters
    ----------
    series
        Label -> (instants of the closes in UTC, index values; None breaks the
        line). Labels starting with ``^`` (benchmarks) are drawn dashed.
    closures
        Exchange label -> (start, end) UTC spans of weekdays on which it was closed.
    events
        (UTC instant, label) of the events to mark with vertical lines.
    ax
        Axes to draw on (a new figure when None).

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.
    """
    ax = _new_ax(ax, (10, 6))
    for i, (label, (xs, values)) in enumerate(series.items()):
        ys = [float("nan") if v is None else v for v in values]
        ax.plot(xs, ys, marker=".", ms=5, lw=1.3,  # type: ignore[arg-type]  # datetimes
                color=_COLORS[i % len(_COLORS)], label=label,
                ls="--" if label.startswith("^") else "-")
    _shade_closures(ax, closures)
    _ymin, ymax = ax.get_ylim()
    for ts, label in events:
        ax.axvline(_num(ts), color="black", lw=0.7, ls=":")
        ax.text(_num(ts), ymax, " " + label, rotation=90, va="top", ha="right", fontsize=7)
    ax.axhline(100, color="grey", lw=0.6)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))  # type: ignore[no-untyped-call]
    ax.set_xlabel("time (UTC); each point is a session close")
    ax.set_ylabel("index (100 = last close before the shock)")
    ax.set_title("Prices indexed to 100 in calendar time")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=8, ncol=4)
    ax.grid(alpha=0.3)
    return ax


_LABEL_FONTSIZE = 7.5
#: Rows of labels on each side of the timeline's axis, at most.
_MAX_ROW = 10


def _text_width_pt(text: str, fontsize: float, bold: bool = False) -> float:
    """Rough width of rendered text: 0.62 em per narrow character, 1 em per wide one (Hangul)."""
    ems = sum(1.0 if unicodedata.east_asian_width(c) in "WF" else 0.62 for c in text)
    return ems * fontsize * (1.1 if bold else 1.0)


def _place_labels(xs: list[float], widths: list[float], x_max: float,
                  stem: float) -> list[tuple[int, bool]]:
    """Row (±1 .. ±_MAX_ROW) and side of each timeline label, avoiding overlaps greedily.

    ``xs`` are the events' positions in increasing order and ``widths`` their labels'
    widths, in data units. A label extends to the right of its event, or to the left when
    it would cross ``x_max``. Each label takes the row where it overlaps other labels
    least, then where its stem (which crosses the rows between the axis and the label)
    crosses fewest labels, then the nearest to the axis, trying the two sides in turn
    (starting above for even events, below for odd ones). Returns (row, extends right)
    per label.
    """
    rows: dict[int, list[tuple[float, float]]] = {}
    placed: list[tuple[int, bool]] = []

    def hit(row: int, lo: float, hi: float) -> float:
        return sum(max(0.0, min(b, hi) - max(a, lo)) for a, b in rows.get(row, []))

    for i, (x, w) in enumerate(zip(xs, widths, strict=True)):
        right = x + w <= x_max
        span = (x, x + w) if right else (x - w, x)
        first = 1 if i % 2 == 0 else -1
        candidates = [side * k for k in range(1, _MAX_ROW + 1) for side in (first, -first)]
        costs: list[tuple[float, float, int]] = []
        for n, row in enumerate(candidates):
            sign = 1 if row > 0 else -1
            crossed = sum(hit(sign * k, x - stem, x + stem) for k in range(1, abs(row)))
            costs.append((hit(row, *span), crossed, n))
        row = candidates[min(costs)[2]]
        rows.setdefault(row, []).append(span)
        sign = 1 if row > 0 else -1
        for k in range(1, abs(row)):  # the stem, in the rows it crosses
            rows.setdefault(sign * k, []).append((x - stem, x + stem))
        placed.append((row, right))
    return placed


@_styled
def plot_event_timeline(
    events: list[tuple[datetime, str, str, bool]],
    ax: Axes | None = None,
    *,
    closures: dict[str, list[tuple[datetime, datetime]]] | None = None,
    title: str = "Event timeline",
) -> Axes:
    """Events on a strip in calendar time (UTC), coloured by category, confounders marked.

    Parameters
    ----------
    events
        (instant in UTC, naive or aware; label; category; is_confounder) of each event.
        Markers are coloured by category (one legend entry each); confounders are drawn
        as a red-edged ``X`` with a red label and a red dashed stem (legend entry
        "confounder"; a category itself named "confounder" gets no entry of its own).
        Labels are set in rows above and below the axis, each in the row nearest the
        axis where it overlaps no other label (by estimated widths), so that dense
        clusters of events stay readable; a new figure grows taller than 3.5 inches
        when more than six rows a side are needed (up to ten).
    ax
        Axes to draw on (a new, wide and short figure when None).
    closures
        Exchange label -> (start, end) UTC spans of weekdays on which it was closed,
        shaded as in :func:`plot_indexed_prices`.
    title
        Title of the axes.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.
    """
    own_figure = ax is None
    ax = _new_ax(ax, (10, 3.5))
    ax.xaxis_date(tz=mdates.UTC)
    _shade_closures(ax, closures or {})
    ordered = sorted(events, key=lambda e: _num(e[0]))
    xs = [_num(e[0]) for e in ordered]
    # a category named "confounder" is already said by the confounder marker
    categories = list(dict.fromkeys(e[2] for e in ordered
                                    if e[2].strip().casefold() != "confounder"))
    color_of = {c: _CATEGORY_COLORS[i % len(_CATEGORY_COLORS)]
                for i, c in enumerate(categories)}
    handles: list[Any] = [
        Line2D([], [], ls="none", marker="o", ms=7, mfc=color_of[c], mec="black", mew=0.6,
               label=c) for c in categories]
    if any(e[3] for e in ordered):
        handles.append(Line2D([], [], ls="none", marker="X", ms=10, mfc="white",
                              mec=_CONFOUNDER_COLOR, mew=1.5, label="confounder"))
    handles += ax.get_legend_handles_labels()[0]  # the closures

    lo, hi = (min(xs), max(xs)) if xs else (0.0, 0.0)
    for spans in (closures or {}).values():
        for start, end in spans:
            lo, hi = min(lo, _num(start)), max(hi, _num(end))
    if hi - lo < 2.0:  # a lone event (or a tight cluster): show two days around it
        lo, hi = (lo + hi) / 2 - 1.0, (lo + hi) / 2 + 1.0
    x0, x1 = lo - 0.03 * (hi - lo), hi + 0.03 * (hi - lo)
    if xs:
        ax.set_xlim(x0, x1)
    # data units per point, with the legend on the right taking about a fifth of the width
    axes_pt = ax.bbox.width * 72 / ax.figure.dpi * (0.8 if handles else 1.0)
    per_pt = (x1 - x0) / axes_pt
    widths = [(_text_width_pt(e[1], _LABEL_FONTSIZE, e[3]) + 6) * per_pt for e in ordered]
    placement = _place_labels(xs, widths, x1, stem=3 * per_pt)

    ax.axhline(0, color="black", lw=1.0, zorder=1)
    for (_ts, label, category, confounder), x, (row, right) in zip(ordered, xs, placement,
                                                                  strict=True):
        edge = _CONFOUNDER_COLOR if confounder else "black"
        ax.vlines(x, 0, row, color=edge, lw=0.7, ls="--" if confounder else "-", zorder=2)
        ax.plot([x], [0], ls="none", marker="X" if confounder else "o",
                ms=10 if confounder else 7, mfc=color_of.get(category, "white"), mec=edge,
                mew=1.5 if confounder else 0.6, zorder=3)
        ax.annotate(label, xy=(x, row), xytext=(3 if right else -3, 2 if row > 0 else -2),
                    textcoords="offset points", ha="left" if right else "right",
                    va="bottom" if row > 0 else "top", fontsize=_LABEL_FONTSIZE,
                    color=_CONFOUNDER_COLOR if confounder else "black",
                    fontweight="bold" if confounder else "normal")
    top = max((abs(row) for row, _ in placement), default=1)
    ax.set_ylim(-top - 0.8, top + 0.8)
    height = 1.2 + (2 * top + 1.6) * 12 / 72  # about 12 points a row
    if own_figure and height > 3.5:  # a dense cluster: grow taller
        ax.figure.set_size_inches(10, height)  # type: ignore[union-attr]
    locator = mdates.AutoDateLocator(tz=mdates.UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(
        mdates.ConciseDateFormatter(locator, tz=mdates.UTC))  # type: ignore[no-untyped-call]
    ax.yaxis.set_visible(False)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel("time (UTC)")
    ax.set_title(title)
    if handles:
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8,
                  frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return ax


@_styled
def plot_equity(equity: pl.DataFrame, ax: Axes | None = None, *,
                title: str = "Equity") -> Axes:
    """A backtest's equity against buy-and-hold of its benchmark.

    Parameters
    ----------
    equity
        Columns date, equity, benchmark_equity (reporting currency).
    ax
        Axes to draw on (a new figure when None).
    title
        The title.
    """
    ax = _new_ax(ax, (9, 4.5))
    dates = equity["date"].to_list()
    ax.plot(dates, equity["equity"].to_list(), color=_COLORS[0], lw=1.6, label="strategy")
    if "benchmark_equity" in equity.columns:
        bench = [float("nan") if v is None else v for v in equity["benchmark_equity"].to_list()]
        ax.plot(dates, bench, color="grey", ls="--", lw=1.2, label="buy and hold (benchmark)")
    ax.set_title(title)
    ax.set_ylabel("equity")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    ax.figure.autofmt_xdate()
    return ax


def _output_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    p = Path(path)
    base = p.with_suffix("") if p.suffix.lower() in (".png", ".svg") else p
    return base.with_name(base.name + ".png"), base.with_name(base.name + ".svg")


def save(ax: Axes, path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Save the axes' figure as a PNG and an SVG side by side, and close it.

    Parameters
    ----------
    ax
        Axes of the figure to save (as returned by a ``plot_*`` function).
    path
        Where to write, with or without a ``.png`` or ``.svg`` suffix: ``figs/x.png``,
        ``figs/x.svg`` and ``figs/x`` all write ``figs/x.png`` and ``figs/x.svg``.

    Returns
    -------
    tuple of pathlib.Path
        (PNG path, SVG path).

    Notes
    -----
    The files are reproducible for a given matplotlib and font set: the SVG has no
    date in its metadata and its ids use the fixed salt :data:`SVG_HASHSALT`; the PNG
    has no timestamp.
    """
    png, svg = _output_paths(path)
    fig: Any = ax.figure  # Figure | SubFigure in the stubs
    with _impact_rc():
        fig.tight_layout()
        fig.savefig(png, format="png")
        fig.savefig(svg, format="svg", metadata={"Date": None})
    plt.close(fig)
    return png, svg
