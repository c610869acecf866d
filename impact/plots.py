"""Figures for the report: one ``plot_*(data, ax=None) -> Axes`` per figure.

Never shows a window: the Agg backend is selected, and figures are saved by
the caller (:mod:`impact.report`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import polars as pl

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def _new_ax(ax: Any, size: tuple[float, float]) -> Any:
    if ax is not None:
        return ax
    _fig, ax = plt.subplots(figsize=size, dpi=110)
    return ax


def plot_car_paths(ars: pl.DataFrame, labels: dict[str, str], ax: Any = None, *,
                   title: str = "Cumulative abnormal returns") -> Any:
    """Cumulative abnormal return by relative day, one line per security, with 95% bands.

    Parameters
    ----------
    ars
        Rows of ``abnormal_returns`` for one event and model: ticker, rel_day, car, car_se.
    labels
        Ticker -> label for the legend.
    ax
        Axes to draw on (a new figure when None).
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


def plot_indexed_prices(
    series: dict[str, tuple[list[datetime], list[float | None]]],
    closures: dict[str, list[tuple[datetime, datetime]]],
    events: list[tuple[datetime, str]],
    ax: Any = None,
) -> Any:
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
    """
    ax = _new_ax(ax, (10, 6))
    for i, (label, (xs, values)) in enumerate(series.items()):
        ys = [float("nan") if v is None else v for v in values]
        ax.plot(xs, ys, marker=".", ms=5, lw=1.3, color=_COLORS[i % len(_COLORS)],
                label=label, ls="--" if label.startswith("^") else "-")
    shade_colors = ["#f2c14e", "#9ecae1"]
    for j, (label, spans) in enumerate(closures.items()):
        for k, (start, end) in enumerate(spans):
            ax.axvspan(start, end, color=shade_colors[j % 2], alpha=0.35, lw=0,
                       label=f"{label} closed" if k == 0 else None)
    _ymin, ymax = ax.get_ylim()
    for ts, label in events:
        ax.axvline(ts, color="black", lw=0.7, ls=":")
        ax.text(ts, ymax, " " + label, rotation=90, va="top", ha="right", fontsize=7)
    ax.axhline(100, color="grey", lw=0.6)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))  # type: ignore[no-untyped-call]
    ax.set_xlabel("time (UTC); each point is a session close")
    ax.set_ylabel("index (100 = last close before the shock)")
    ax.set_title("Prices indexed to 100 in calendar time")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=8, ncol=4)
    ax.grid(alpha=0.3)
    return ax


def save(ax: Any, path: str) -> None:
    """Save the axes' figure as PNG (and close it)."""
    fig = ax.figure
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
