"""Study-file validation: every error names the file, the line, the event, the key and a fix."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from impact.catalog import DATE_ONLY_TIME, load_study
from impact.errors import CatalogError, ExitCode, InputError

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "events" / "deepseek.toml"
BASE = STUDY.read_text(encoding="utf-8")


def write_study(tmp_path: Path, *edits: tuple[str, str], name: str = "study.toml") -> Path:
    """Write events/deepseek.toml with each (old, new) replaced once (old must be present)."""
    text = BASE
    for old, new in edits:
        assert old in text, f"the test's anchor {old!r} is no longer in events/deepseek.toml"
        text = text.replace(old, new, 1)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> CatalogError:
    with pytest.raises(CatalogError) as info:
        load_study(path)
    return info.value


def line_of_error(err: CatalogError, path: Path) -> tuple[int, str]:
    """The line number in ``path:LINE: ...`` and that line's text."""
    message = str(err)
    m = re.match(rf"^{re.escape(str(path))}:(\d+): ", message)
    assert m, f"message does not start with '{path}:LINE: ': {message}"
    number = int(m.group(1))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert 1 <= number <= len(lines), message
    return number, lines[number - 1]


# --------------------------------------------------------------------------- the real file


def test_real_study_loads() -> None:
    study = load_study(STUDY)
    assert study.name == "deepseek"
    assert study.primary_event == "deepseek-app-store"
    assert study.study_events == (
        "deepseek-app-store", "deepseek-r1-release", "deepseek-v3-release")
    assert len(study.events) >= 10
    for ev in study.events:
        assert ev.ts.tzinfo is not None, ev.event_id
        assert ev.ts.utcoffset() is not None, ev.event_id
        assert ev.ts.tzinfo == ZoneInfo(ev.tz), ev.event_id
        if ev.date_only:
            assert ev.ts.time() == DATE_ONLY_TIME == datetime(2025, 1, 1, 12, 0).time()
    date_only = [ev for ev in study.events if ev.date_only]
    timed = [ev for ev in study.events if not ev.date_only]
    assert date_only and timed


def test_real_study_r1_release_at_noon_shanghai() -> None:
    ev = load_study(STUDY).event("deepseek-r1-release")
    assert ev.date_only
    assert ev.tz == "Asia/Shanghai"
    assert ev.ts == datetime(2025, 1, 20, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert ev.ts.utcoffset().total_seconds() == 8 * 3600
    # the same instant in UTC: 04:00
    assert ev.ts.astimezone(ZoneInfo("UTC")).hour == 4


def test_real_study_timed_event_keeps_local_time() -> None:
    ev = load_study(STUDY).event("hankyung-nvidia-chips")
    assert not ev.date_only
    assert ev.ts == datetime(2025, 1, 30, 18, 22, tzinfo=ZoneInfo("Asia/Seoul"))


def test_real_study_securities_and_benchmarks() -> None:
    study = load_study(STUDY)
    got = [(s.ticker, s.exchange, s.benchmark) for s in study.securities]
    assert got == [
        ("NVDA", "XNYS", "^GSPC"),
        ("000660.KS", "XKRX", "^KS11"),
        ("005930.KS", "XKRX", "^KS11"),
    ]
    assert [(b.ticker, b.exchange, b.benchmark) for b in study.benchmarks] == [
        ("^GSPC", "XNYS", None),
        ("^IXIC", "XNYS", None),
        ("SOXX", "XNYS", None),
        ("^KS11", "XKRX", None),
    ]
    assert study.prices.snapshot == (STUDY.parent / "../../shared/data/prices").resolve()


def test_catalog_error_is_an_input_error_with_exit_code_3() -> None:
    assert issubclass(CatalogError, InputError)
    assert CatalogError.exit_code == ExitCode.INPUT == 3


# --------------------------------------------------------------------------- events


def test_event_without_tz(tmp_path: Path) -> None:
    path = write_study(tmp_path, (
        'id = "deepseek-r1-release"\ndate = 2025-01-20\ntz = "Asia/Shanghai"\n',
        'id = "deepseek-r1-release"\ndate = 2025-01-20\n',
    ))
    err = load_error(path)
    _, line = line_of_error(err, path)
    assert line == 'id = "deepseek-r1-release"'
    msg = str(err)
    assert "event 'deepseek-r1-release'" in msg
    assert "field 'tz'" in msg
    assert "no time zone" in msg
    assert 'add tz = "Asia/Seoul"' in msg
    assert err.event_id == "deepseek-r1-release"
    assert err.field == "tz"


def test_catalog_error_path_attribute_is_the_file(tmp_path: Path) -> None:
    path = write_study(tmp_path, ('category = "statement"', 'category = "statment"'))
    err = load_error(path)
    assert err.path == str(path)


def test_invalid_tz_name_suggests_the_right_one(tmp_path: Path) -> None:
    path = write_study(tmp_path, (
        'date = 2025-02-04\ntz = "Asia/Seoul"', 'date = 2025-02-04\ntz = "Asia/Seol"'))
    err = load_error(path)
    _, line = line_of_error(err, path)
    assert line == 'tz = "Asia/Seol"'
    msg = str(err)
    assert "event 'samsung-arm-openai-softbank-meeting'" in msg
    assert "field 'tz'" in msg
    assert "'Asia/Seol' is not an IANA time zone" in msg
    assert "did you mean 'Asia/Seoul'?" in msg


def test_time_with_utc_offset(tmp_path: Path) -> None:
    path = write_study(tmp_path, (
        "time = 2025-01-31T15:30:00\n", "time = 2025-01-31T15:30:00+09:00\n"))
    err = load_error(path)
    _, line = line_of_error(err, path)
    assert line == "time = 2025-01-31T15:30:00+09:00"
    msg = str(err)
    assert "event 'krx-reacts-2025-01-31'" in msg
    assert "field 'time'" in msg
    assert "UTC offset" in msg
    # the fix: the same local time without the offset, and the zone in tz
    assert "time = 2025-01-31T15:30:00 and tz =" in msg


def test_both_date_and_time(tmp_path: Path) -> None:
    path = write_study(tmp_path, (
        "time = 2025-01-31T15:30:00\n", "time = 2025-01-31T15:30:00\ndate = 2025-01-31\n"))
    err = load_error(path)
    _, line = line_of_error(err, path)
    assert line == 'id = "krx-reacts-2025-01-31"'
    msg = str(err)
    assert "event 'krx-reacts-2025-01-31'" in msg
    assert "field 'time'" in msg
    assert "give exactly one of 'date'" in msg
    assert "or 'time'" in msg


def test_typo_in_event_key(tmp_path: Path) -> None:
    path = write_study(tmp_path, (
        'title = "Nvidia rebounds +8.93%"', 'titel = "Nvidia rebounds +8.93%"'))
    err = load_error(path)
    _, line = line_of_error(err, path)
    assert line == 'titel = "Nvidia rebounds +8.93%"'
    msg = str(err)
    assert "event 'nvda-rebounds-2025-01-28'" in msg
    assert "field 'titel'" in msg
    assert "unknown key 'titel'" in msg
    assert "did you mean 'title'?" in msg


def test_unknown_category(tmp_path: Path) -> None:
    path = write_study(tmp_path, ('category = "statement"', 'category = "statment"'))
    err = load_error(path)
    _, line = line_of_error(err, path)
    assert line == 'category = "statment"'
    msg = str(err)
    assert "event 'nvidia-statement'" in msg
    assert "field 'category'" in msg
    assert "unknown category 'statment'" in msg
    assert "did you mean 'statement'?" in msg
    assert "model-release" in msg and "market-closure" in msg  # the allowed list


def test_duplicate_event_ids(tmp_path: Path) -> None:
    path = write_study(tmp_path, ('id = "joongang-hbm-risk"', 'id = "chosunbiz-hbm-risk"'))
    err = load_error(path)
    _, line = line_of_error(err, path)
    assert line == 'id = "chosunbiz-hbm-risk"'
    lines = path.read_text(encoding="utf-8").splitlines()
    first = lines.index('id = "chosunbiz-hbm-risk"') + 1
    second = lines.index('id = "chosunbiz-hbm-risk"', first) + 1
    assert err.line == second  # the duplicate, not the first definition
    msg = str(err)
    assert "event 'chosunbiz-hbm-risk'" in msg
    assert "field 'id'" in msg
    assert f"already used by the event at line {first}" in msg
    assert "give each event its own id" in msg


# --------------------------------------------------------------------------- [study]


def test_typo_in_study_key(tmp_path: Path) -> None:
    path = write_study(tmp_path, ("primary_event =", "primary_evnt ="))
    err = load_error(path)
    _, line = line_of_error(err, path)
    assert line.startswith("primary_evnt = ")
    msg = str(err)
    assert "field 'primary_evnt'" in msg
    assert "unknown key 'primary_evnt' in [study]" in msg
    assert "did you mean 'primary_event'?" in msg


def test_typo_in_windows_key(tmp_path: Path) -> None:
    path = write_study(tmp_path, ("estimation = [-250, -11]", "estimaton = [-250, -11]"))
    err = load_error(path)
    _, line = line_of_error(err, path)
    assert line == "estimaton = [-250, -11]"
    msg = str(err)
    assert "field 'estimaton'" in msg
    assert "unknown key 'estimaton' in [study.windows]" in msg
    assert "did you mean 'estimation'?" in msg


def test_estimation_window_overlapping_event_window(tmp_path: Path) -> None:
    path = write_study(tmp_path, ("estimation = [-250, -11]", "estimation = [-250, -3]"))
    err = load_error(path)
    _, line = line_of_error(err, path)
    assert line == "estimation = [-250, -3]"
    msg = str(err)
    assert "field 'study.windows.estimation'" in msg
    assert "[-250, -3] must end before the event window [-5, 10] starts" in msg
    assert "estimation = [-250, -11]" in msg  # an example of a fix


def test_car_window_outside_event_window(tmp_path: Path) -> None:
    path = write_study(tmp_path, (
        "car = [[0, 0], [0, 1], [-1, 1], [0, 5], [0, 10]]", "car = [[0, 0], [0, 20]]"))
    err = load_error(path)
    _, line = line_of_error(err, path)
    assert line == "car = [[0, 0], [0, 20]]"
    msg = str(err)
    assert "field 'study.windows.car'" in msg
    assert "CAR window [0, 20] is outside the event window [-5, 10]" in msg
    assert "widen the event window or shorten the CAR window" in msg


# --------------------------------------------------------------------------- instruments

_SK_HYNIX_EXCHANGE = 'name_local = "SK하이닉스"\nexchange = "XKRX"'


def test_unknown_exchange(tmp_path: Path) -> None:
    path = write_study(
        tmp_path, (_SK_HYNIX_EXCHANGE, _SK_HYNIX_EXCHANGE.replace("XKRX", "XKRZ")))
    err = load_error(path)
    number, line = line_of_error(err, path)
    assert line == 'exchange = "XKRZ"'
    # the line is inside SK Hynix's [[securities]] block
    lines = path.read_text(encoding="utf-8").splitlines()
    assert 'ticker = "000660.KS"' in lines[number - 6:number]
    msg = str(err)
    assert "field 'securities.exchange'" in msg
    assert "'XKRZ' is not an exchange_calendars calendar name" in msg
    assert "did you mean 'XKRX'?" in msg


def test_benchmark_not_among_benchmarks(tmp_path: Path) -> None:
    path = write_study(tmp_path, ('benchmark = "^GSPC"', 'benchmark = "^N225"'))
    err = load_error(path)
    _, line = line_of_error(err, path)
    assert line == 'benchmark = "^N225"'
    msg = str(err)
    assert "field 'securities.benchmark'" in msg
    assert "security 'NVDA' has benchmark '^N225'" in msg
    assert "not among the [[benchmarks]] (SOXX, ^GSPC, ^IXIC, ^KS11)" in msg
    assert "add it there" in msg


def test_missing_key_of_a_security_points_at_that_security(tmp_path: Path) -> None:
    path = write_study(tmp_path, (
        'name_local = "SK하이닉스"\nexchange = "XKRX"\ncurrency = "KRW"\n',
        'name_local = "SK하이닉스"\nexchange = "XKRX"\n',
    ))
    err = load_error(path)
    assert "securities '000660.KS' has no 'currency'" in str(err)
    _, line = line_of_error(err, path)
    # the line named is SK Hynix's [[securities]] header, not NVDA's currency line
    assert line == "[[securities]]"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[err.line] == 'ticker = "000660.KS"'  # type: ignore[index]


# --------------------------------------------------------------------------- the file itself


def test_invalid_toml_syntax(tmp_path: Path) -> None:
    path = write_study(tmp_path, ('currency = "USD"\nbenchmark', 'currency = "USD\nbenchmark'))
    bad_line = path.read_text(encoding="utf-8").splitlines().index('currency = "USD') + 1
    err = load_error(path)
    msg = str(err)
    assert msg.startswith(str(path))
    assert "not valid TOML" in msg
    assert f"line {bad_line}" in msg


def test_invalid_toml_syntax_uses_path_line_format(tmp_path: Path) -> None:
    path = write_study(tmp_path, ('currency = "USD"\nbenchmark', 'currency = "USD\nbenchmark'))
    bad_line = path.read_text(encoding="utf-8").splitlines().index('currency = "USD') + 1
    err = load_error(path)
    number, _ = line_of_error(err, path)
    assert number == bad_line


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    err = load_error(path)
    msg = str(err)
    assert msg.startswith(f"{path}: ")
    assert "no such file" in msg
    assert "events/deepseek.toml" in msg  # an example of what to give
    assert err.exit_code == ExitCode.INPUT


# --------------------------------------------------------------------------- factors, models


def test_unknown_factor_in_a_model(tmp_path: Path) -> None:
    path = write_study(tmp_path, ('factors = ["nasdaq_prev"]', 'factors = ["nasdaq_prv"]'))
    err = load_error(path)
    assert "model 'market+us': factor 'nasdaq_prv' is not defined in [[factors]]" in str(err)
    assert "did you mean 'nasdaq_prev'?" in str(err)
    _, line = line_of_error(err, path)
    assert line == 'factors = ["nasdaq_prv"]'


def test_unknown_model_of_a_security(tmp_path: Path) -> None:
    path = write_study(tmp_path, ('"market-adjusted", "market+us"]',
                                  '"market-adjusted", "market+uss"]'))
    err = load_error(path)
    assert "unknown model 'market+uss' in securities '000660.KS' models" in str(err)
    assert "did you mean 'market+us'?" in str(err)


def test_factor_lag_must_be_small_whole_number(tmp_path: Path) -> None:
    path = write_study(tmp_path, ('exchange = "XNYS"\nname = "Nasdaq Composite',
                                  'exchange = "XNYS"\nlag = -1\nname = "Nasdaq Composite'))
    err = load_error(path)
    assert "lag must be a whole number of sessions from 0 to 5" in str(err)


def test_models_and_factors_load() -> None:
    from impact.catalog import load_study

    s = load_study(ROOT / "events" / "deepseek.toml")
    assert s.models_for("NVDA") == ("market", "constant-mean", "market-adjusted")
    assert s.models_for("000660.KS")[-1] == "market+us"
    spec = s.model_specs["market+us"]
    assert spec.kind == "multi-factor" and spec.factors == ("nasdaq_prev",) and spec.market
    assert "^IXIC" in s.all_tickers
    assert s.instrument("^IXIC").exchange == "XNYS"
