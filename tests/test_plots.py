"""Figures: each plot function on small synthetic frames, saving, and Korean text.

Korean names must render as Hangul, not boxes. Two independent checks:

- matplotlib warns "Glyph ... missing from font(s) ..." for every character the chosen
  fonts lack; no such warning may be raised (and, as a control, one *is* raised when
  the same text is drawn with DejaVu Sans alone, so the check can fail);
- the SVGs are written with text as paths, each glyph defined once under an id
  ``<font PostScript name>-<glyph>``: a figure with Hangul must contain NanumGothic
  glyphs, a Latin-only one none; and a PNG of Hangul drawn with our fonts differs
  from the same PNG drawn with DejaVu Sans alone (boxes).
"""

from __future__ import annotations

import io
import itertools
import sys
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import polars as pl
import pytest
from matplotlib.axes import Axes
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.text import Annotation

from impact import plots

KOREAN = {"000660.KS": "SK하이닉스 (000660.KS)", "005930.KS": "삼성전자 (005930.KS)"}
MISSING_GLYPH = "missing from font"


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def _ars() -> pl.DataFrame:
    """Two securities, rel_day -2..2; one null AR and one null s.e."""
    return pl.DataFrame({
        "ticker": ["000660.KS"] * 5 + ["005930.KS"] * 5,
        "rel_day": [-2, -1, 0, 1, 2] * 2,
        "ar": [0.01, -0.02, -0.09, None, 0.004, 0.002, 0.0, -0.03, 0.02, 0.001],
        "se": [0.01, 0.01, 0.01, 0.01, 0.01, 0.02, 0.02, 0.02, None, 0.02],
        "car": [0.01, -0.01, -0.10, -0.10, -0.096, 0.002, 0.002, -0.028, -0.008, -0.007],
        "car_se": [0.01, 0.014, 0.017, 0.02, 0.022, 0.02, 0.028, 0.035, 0.04, 0.045],
    })


T0 = datetime(2025, 1, 27, 0, 30)  # naive UTC, as report.py passes them

EVENTS = [
    (datetime(2025, 1, 20, 12, tzinfo=UTC), "DeepSeek-R1 발표", "model release", False),
    (T0, "삼성전자 reopens", "market", False),
    (T0 - timedelta(days=5), "Stargate", "policy", True),
    (T0 + timedelta(days=2), "FOMC", "confounder", True),
]
CLOSURES = {"KRX": [(datetime(2025, 1, 27, 15), datetime(2025, 1, 29, 15))]}


def _figure(ax: Axes) -> Figure:
    fig = ax.figure
    assert isinstance(fig, Figure)
    return fig


def _legend_texts(ax: Axes) -> list[str]:
    legend = ax.get_legend()
    assert legend is not None
    return [t.get_text() for t in legend.get_texts()]


def _assert_png_svg(png: Path, svg: Path) -> None:
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert png.stat().st_size > 1000
    text = svg.read_text(encoding="utf-8")
    assert "<svg" in text and text.rstrip().endswith("</svg>")


# --- Korean text ---------------------------------------------------------------------

def test_korean_labels_render_with_nanumgothic(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ax = plots.plot_ar_bars(_ars(), KOREAN, title="초과수익률 (abnormal returns)")
        png, svg = plots.save(ax, tmp_path / "korean.png")
    missing = [str(w.message) for w in caught if MISSING_GLYPH in str(w.message)]
    assert missing == []
    assert _legend_texts(ax) == list(KOREAN.values())
    assert 'id="NanumGothic-' in svg.read_text(encoding="utf-8")
    assert 'id="DejaVuSans-' in svg.read_text(encoding="utf-8")  # Latin stays in DejaVu
    _assert_png_svg(png, svg)


def test_latin_only_figure_uses_no_korean_glyphs(tmp_path: Path) -> None:
    """Control for the SVG check: NanumGothic appears only when there is Hangul."""
    ax = plots.plot_ar_bars(_ars(), {"000660.KS": "Hynix", "005930.KS": "Samsung"})
    _png, svg = plots.save(ax, tmp_path / "latin")
    assert "NanumGothic" not in svg.read_text(encoding="utf-8")


def _korean_title_png(rc: dict[str, Any]) -> tuple[bytes, list[str]]:
    with warnings.catch_warnings(record=True) as caught, matplotlib.rc_context(rc):  # type: ignore[arg-type]
        warnings.simplefilter("always")
        fig, ax = plt.subplots(figsize=(3, 1), dpi=60)
        ax.set_axis_off()
        ax.set_title("SK하이닉스 삼성전자")
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
    return buf.getvalue(), [str(w.message) for w in caught if MISSING_GLYPH in str(w.message)]


def test_hangul_png_differs_from_tofu() -> None:
    ours, ours_missing = _korean_title_png(plots.rc_params())
    tofu, tofu_missing = _korean_title_png({"font.family": ["DejaVu Sans"]})
    assert ours_missing == []
    assert tofu_missing, "control: DejaVu Sans alone must warn about missing Hangul glyphs"
    assert ours != tofu


def test_fonts_on_an_axes_created_by_the_caller() -> None:
    """The title of a caller's Axes predates impact's settings: its family is set."""
    _fig, ax = plt.subplots()
    out = plots.plot_ar_bars(_ars(), KOREAN, ax, title="삼성전자")
    assert out is ax
    assert "NanumGothic" in ax.title.get_fontfamily()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _figure(ax).savefig(io.BytesIO(), format="png")
    assert not [w for w in caught if MISSING_GLYPH in str(w.message)]


def test_global_settings_untouched() -> None:
    imported_before = "koreanize_matplotlib" in sys.modules
    family = list(matplotlib.rcParams["font.family"])
    salt = matplotlib.rcParams["svg.hashsalt"]
    plots.setup_fonts()
    plots.plot_car_paths(_ars(), KOREAN)
    assert list(matplotlib.rcParams["font.family"]) == family
    assert matplotlib.rcParams["svg.hashsalt"] == salt
    if not imported_before:  # the package rewrites rcParams on import: only its files are used
        assert "koreanize_matplotlib" not in sys.modules


def test_setup_fonts_is_idempotent() -> None:
    plots.setup_fonts()
    n = len(matplotlib.font_manager.fontManager.ttflist)
    plots.setup_fonts()
    assert len(matplotlib.font_manager.fontManager.ttflist) == n
    assert plots.rc_params()["font.family"] == ["DejaVu Sans", "NanumGothic"]


def test_missing_fonts_warn_but_plot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(plots, "_family", None)
    monkeypatch.setattr(plots, "_bundled_font_files", lambda: [])
    monkeypatch.setattr(plots, "_KOREAN_FAMILIES", ())
    with pytest.warns(UserWarning, match="NanumGothic fonts of koreanize-matplotlib"):
        ax = plots.plot_ar_bars(_ars(), {"000660.KS": "Hynix", "005930.KS": "Samsung"})
    assert plots.rc_params()["font.family"] == ["DejaVu Sans"]
    _assert_png_svg(*plots.save(ax, tmp_path / "nofonts.png"))


# --- the plot functions ----------------------------------------------------------------

def test_plot_car_paths(tmp_path: Path) -> None:
    ax = plots.plot_car_paths(_ars().select("ticker", "rel_day", "car", "car_se"), KOREAN)
    assert isinstance(ax, Axes)
    assert len(ax.get_lines()) >= 2
    _assert_png_svg(*plots.save(ax, tmp_path / "car_paths.png"))


def test_plot_ar_bars_skips_null_ars(tmp_path: Path) -> None:
    ars = _ars()
    ax = plots.plot_ar_bars(ars.select("ticker", "rel_day", "ar", "se"), KOREAN)
    assert isinstance(ax, Axes)
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [len(c) for c in bars] == [4, 5]  # 000660's null AR (day 1) has no bar
    heights = sorted(p.get_height() for c in bars for p in c)
    assert heights == sorted(ars["ar"].drop_nulls().to_list())
    # bars are side by side around each integer day
    xs = sorted(p.get_x() + p.get_width() / 2 for p in bars[0])
    assert xs == pytest.approx([-2.2, -1.2, -0.2, 1.8])
    # error bars only where both AR and s.e. exist; they span ±1.96 se
    errs = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert sum(len(c.lines[2][0].get_segments()) for c in errs) == 8
    seg = errs[0].lines[2][0].get_segments()[0]
    assert seg[1][1] - seg[0][1] == pytest.approx(2 * 1.96 * 0.01)
    assert isinstance(ax.yaxis.get_major_formatter(), mticker.PercentFormatter)
    assert any(np.asarray(line.get_xdata())[0] == 0 for line in ax.get_lines())  # day-0 line
    _assert_png_svg(*plots.save(ax, tmp_path / "ar_bars.png"))


def test_plot_ar_bars_all_null_security() -> None:
    ars = _ars().with_columns(
        pl.when(pl.col("ticker") == "005930.KS").then(None).otherwise(pl.col("ar")).alias("ar"))
    ax = plots.plot_ar_bars(ars, KOREAN)
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [len(c) for c in bars] == [4, 0]


def test_plot_event_timeline(tmp_path: Path) -> None:
    ax = plots.plot_event_timeline(EVENTS, closures=CLOSURES)
    assert isinstance(ax, Axes)
    assert tuple(_figure(ax).get_size_inches()) == (10, 3.5)
    texts = _legend_texts(ax)
    # one entry per category, in order of time; "confounder" once, though it is also a category name
    assert texts == ["model release", "policy", "market", "confounder", "KRX closed"]
    markers = [str(line.get_marker()) for line in ax.get_lines()
               if np.asarray(line.get_xdata()).size == 1]
    assert sorted(markers) == ["X", "X", "o", "o"]
    confounder_labels = {t.get_text() for t in ax.texts if t.get_color() == "#d62728"}
    assert confounder_labels == {"Stargate", "FOMC"}
    # labels are staggered: no two neighbours at the same height
    labels = sorted((t for t in ax.texts if isinstance(t, Annotation)), key=lambda t: t.xy[0])
    assert len(labels) == len(EVENTS)
    assert all(a.xy[1] != b.xy[1] for a, b in itertools.pairwise(labels))  # alternating
    png, svg = plots.save(ax, tmp_path / "timeline.png")
    _assert_png_svg(png, svg)
    assert 'id="NanumGothic-' in svg.read_text(encoding="utf-8")


def test_timeline_labels_of_a_dense_cluster_do_not_overlap() -> None:
    events = [(T0 + timedelta(minutes=30 * i), f"event-{i:02d} 삼성전자 long label", "news",
               i % 4 == 0) for i in range(12)]
    ax = plots.plot_event_timeline(events)  # 12 labels, each wider than the cluster
    labels = [t for t in ax.texts if isinstance(t, Annotation)]
    assert max(abs(t.xy[1]) for t in labels) == 6  # six rows a side
    fig = _figure(ax)
    fig.tight_layout()
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in labels]
    overlapping = [(i, j) for i, j in itertools.combinations(range(12), 2)
                   if boxes[i].overlaps(boxes[j])]
    assert overlapping == []
    inside = ax.get_window_extent()
    assert all(inside.x0 - 1 <= b.x0 and b.x1 <= inside.x1 + 1 for b in boxes)
    assert all(inside.y0 - 1 <= b.y0 and b.y1 <= inside.y1 + 1 for b in boxes)


def test_timeline_grows_taller_for_a_very_dense_cluster() -> None:
    events = [(T0 + timedelta(minutes=10 * i), f"event {i}", "news", False) for i in range(16)]
    ax = plots.plot_event_timeline(events)
    assert _figure(ax).get_size_inches()[1] > 3.5


def test_plot_event_timeline_empty_and_single() -> None:
    assert isinstance(plots.plot_event_timeline([]), Axes)
    ax = plots.plot_event_timeline([(T0, "only", "market", False)])
    assert _legend_texts(ax) == ["market"]
    lo, hi = ax.get_xlim()
    assert hi - lo > 1  # padded around a single instant


def test_plot_indexed_prices(tmp_path: Path) -> None:
    days = [datetime(2025, 1, 24, 6), datetime(2025, 1, 27, 6), datetime(2025, 1, 31, 6)]
    series: dict[str, tuple[list[datetime], list[float | None]]] = {
        "SK하이닉스 (000660.KS)": (days, [100.0, None, 90.0]),
        "^KS11": (days, [100.0, 99.0, 97.0])}
    ax = plots.plot_indexed_prices(series, CLOSURES, [(T0, "DeepSeek")])
    assert isinstance(ax, Axes)
    assert "KRX closed" in _legend_texts(ax)
    _assert_png_svg(*plots.save(ax, tmp_path / "prices_indexed.png"))


# --- save --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["fig.png", "fig.svg", "fig", "fig.PNG"])
def test_save_writes_png_and_svg(tmp_path: Path, name: str) -> None:
    ax = plots.plot_car_paths(_ars(), KOREAN)
    fig = _figure(ax)
    png, svg = plots.save(ax, str(tmp_path / name))
    assert (png.name, svg.name) == ("fig.png", "fig.svg")
    assert png.parent == svg.parent == tmp_path
    _assert_png_svg(png, svg)
    assert not plt.fignum_exists(fig.number)


def test_save_is_reproducible(tmp_path: Path) -> None:
    outputs = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        ax = plots.plot_event_timeline(EVENTS, closures=CLOSURES)
        png, svg = plots.save(ax, tmp_path / run / "timeline.png")
        outputs.append((png.read_bytes(), svg.read_bytes()))
    assert outputs[0] == outputs[1]
    assert b"<dc:date>" not in outputs[0][1]
