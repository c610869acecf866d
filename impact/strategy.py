"""Strategy files for ``impact backtest`` (TOML under ``events/strategies/``).

A strategy names a study (its events, securities, prices and calendars), which
of its events and securities to trade, the direction (long, short, or the sign
of a signal such as another market's abnormal return on its earlier day 0), the
entry (the first open or close strictly after the news is public on the
security's exchange), the holding period, an optional stop, costs, sizing and
the reporting currency. Everything is validated before anything is computed;
errors name the file, the line, the key and the fix.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from impact.backtest import Rules
from impact.errors import CatalogError

_KEYS = ("name", "description", "study", "events", "categories", "securities", "direction",
         "entry", "holding", "stop", "cost_bps", "sizing", "notional", "currency", "benchmark",
         "fx", "signal")
_SIGNAL_KEYS = ("ticker", "field", "model", "event")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class Signal:
    """Where a ``direction = "signal"`` strategy reads its sign."""

    #: The security whose value is read (e.g. NVDA).
    ticker: str
    #: ``ar`` (abnormal return) or ``ret`` (raw return) on its day 0.
    field: str = "ar"
    #: The expected-return model of the abnormal return.
    model: str = "market"
    #: The event whose day 0 is read (default: the traded event).
    event: str | None = None


@dataclass(frozen=True)
class Strategy:
    """A validated strategy file."""

    path: Path
    name: str
    description: str
    study: Path
    events: tuple[str, ...]
    categories: tuple[str, ...]
    securities: tuple[str, ...]
    #: The trading rules, as the engine takes them.
    rules: Rules
    benchmark: str | None
    fx: str | None
    signal: Signal | None
    text: str


def _line(lines: list[str], key: str) -> int | None:
    rx = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for i, line in enumerate(lines):
        if rx.match(line):
            return i + 1
    return None


def load_strategy(path: str | Path) -> Strategy:
    """Read and validate a strategy file.

    Raises
    ------
    CatalogError
        With the file, the line, the key and the fix.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(str(p), "no such file: give a strategy file such as "
                           "events/strategies/short-hynix-after-us-shock.toml") from None
    lines = text.splitlines()

    def err(message: str, key: str | None = None) -> CatalogError:
        return CatalogError(str(p), message, field=f"strategy.{key}" if key else None,
                            line=_line(lines, key.split(".")[-1]) if key else None)

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"at line (\d+)", str(exc))
        raise CatalogError(str(p), f"not valid TOML: {exc}",
                           line=int(m.group(1)) if m else None) from None
    if set(doc) != {"strategy"} or not isinstance(doc["strategy"], dict):
        raise err("the file must hold one [strategy] table")
    raw: dict[str, Any] = doc["strategy"]
    for key in raw:
        if key not in _KEYS:
            close = difflib.get_close_matches(key, _KEYS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(_KEYS)}"
            raise err(f"unknown key '{key}': {hint}", key)

    def req(key: str, kind: type | tuple[type, ...]) -> Any:
        if key not in raw:
            raise err(f"[strategy] has no '{key}'", None)
        v = raw[key]
        if not isinstance(v, kind) or (isinstance(v, bool) and kind is not bool):
            raise err(f"'{key}' has the wrong type ({type(v).__name__})", key)
        return v

    name = req("name", str)
    if not _NAME_RE.match(name):
        raise err(f"name '{name}' must be lower-case letters, digits, '.', '_' or '-' "
                  "(it names the report folder)", "name")
    direction = req("direction", str)
    if direction not in ("long", "short", "signal"):
        raise err(f"direction must be long, short or signal; got {direction!r}", "direction")
    entry = raw.get("entry", "open")
    if entry not in ("open", "close"):
        raise err(f"entry must be open or close (the first one strictly after the news is "
                  f"public); got {entry!r}", "entry")
    holding = req("holding", int)
    if not 1 <= holding <= 250:
        raise err(f"impossible holding period {holding}: give a whole number of sessions "
                  f"from 1 to 250", "holding")
    stop = raw.get("stop")
    if stop is not None and (isinstance(stop, bool) or not isinstance(stop, int | float)
                             or not 0 < stop < 1):
        raise err(f"stop must be a fraction between 0 and 1 (0.05 = 5% against the "
                  f"position); got {stop!r}", "stop")
    cost = raw.get("cost_bps", 0)
    if isinstance(cost, bool) or not isinstance(cost, int | float) or not 0 <= cost <= 500:
        raise err(f"cost_bps must be a number of basis points per side from 0 to 500; got "
                  f"{cost!r}", "cost_bps")
    sizing = raw.get("sizing", "fixed")
    if sizing not in ("equal", "fixed"):
        raise err(f"sizing must be equal or fixed; got {sizing!r}", "sizing")
    notional = raw.get("notional", 100_000)
    if isinstance(notional, bool) or not isinstance(notional, int | float) or notional <= 0:
        raise err(f"notional must be a positive amount; got {notional!r}", "notional")
    currency = raw.get("currency", "USD")
    if not isinstance(currency, str) or not re.match(r"^[A-Z]{3}$", currency):
        raise err(f"currency must be an ISO 4217 code such as USD; got {currency!r}",
                  "currency")

    def str_list(key: str) -> tuple[str, ...]:
        v = raw.get(key, [])
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise err(f"'{key}' must be a list of strings", key)
        return tuple(v)

    events, categories = str_list("events"), str_list("categories")
    if not events and not categories:
        raise err("say which events to trade: events = [\"...\"] (ids) and/or categories = "
                  "[\"news\"]", None)
    securities_raw = raw.get("securities", "event")
    securities = (() if securities_raw == "event" else
                  str_list("securities") if isinstance(securities_raw, list) else None)
    if securities is None:
        raise err("securities must be \"event\" (the study's securities) or a list of "
                  "tickers", "securities")
    signal = None
    if direction == "signal":
        sraw = raw.get("signal")
        if not isinstance(sraw, dict):
            raise err("direction = \"signal\" needs a [strategy.signal] table with ticker "
                      "(and field = \"ar\" or \"ret\", model, event)", "signal")
        for key in sraw:
            if key not in _SIGNAL_KEYS:
                raise err(f"unknown key '{key}' in [strategy.signal] (allowed: "
                          f"{', '.join(_SIGNAL_KEYS)})", key)
        if not isinstance(sraw.get("ticker"), str):
            raise err("[strategy.signal] needs ticker = \"...\"", "ticker")
        field = sraw.get("field", "ar")
        if field not in ("ar", "ret"):
            raise err(f"signal field must be ar or ret; got {field!r}", "field")
        signal = Signal(ticker=sraw["ticker"], field=field,
                        model=str(sraw.get("model", "market")), event=sraw.get("event"))
    elif "signal" in raw:
        raise err("[strategy.signal] goes with direction = \"signal\"", "signal")
    study = (p.parent / req("study", str)).resolve()
    return Strategy(
        path=p, name=name, description=str(raw.get("description", "")), study=study,
        events=events, categories=categories, securities=securities,
        rules=Rules(direction=direction, entry=str(entry), holding=int(holding),
                    stop=float(stop) if stop is not None else None, cost_bps=float(cost),
                    sizing=str(sizing), notional=float(notional), currency=currency),
        benchmark=raw.get("benchmark"), fx=raw.get("fx"),
        signal=signal, text=text)
