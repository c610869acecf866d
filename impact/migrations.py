"""Schema migrations: a registry of steps, each applied in its own transaction.

A new database is built by applying every step from version 1; an older one is
upgraded in place by applying the steps it lacks. After the last step, the views,
table macros and comments of :mod:`impact.schema` are (re)created. The SQL of a
step is frozen once released: never edit a step, add a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from impact.schema import SCHEMA_VERSION, TABLES, interface_sql


@dataclass(frozen=True)
class Migration:
    """One step: from ``version - 1`` to ``version``."""

    version: int
    description: str
    apply: Callable[[duckdb.DuckDBPyConnection], None]


#: Version 1 as released in impact 0.1.0 (frozen).
V1_SQL = """
CREATE SEQUENCE runs_seq START 1;
CREATE TABLE _impact_meta (
  "key" VARCHAR,
  "value" VARCHAR,
  PRIMARY KEY (key)
);
CREATE TABLE events (
  "event_id" VARCHAR,
  "ts" TIMESTAMPTZ,
  "ts_local" VARCHAR,
  "tz" VARCHAR,
  "date_only" BOOLEAN,
  "date_end" DATE,
  "title" VARCHAR,
  "source" VARCHAR,
  "category" VARCHAR,
  "notes" VARCHAR,
  "url" VARCHAR,
  "study" VARCHAR,
  PRIMARY KEY (event_id)
);
CREATE TABLE securities (
  "ticker" VARCHAR,
  "name" VARCHAR,
  "name_local" VARCHAR,
  "exchange" VARCHAR,
  "currency" VARCHAR,
  "role" VARCHAR,
  "benchmark" VARCHAR,
  PRIMARY KEY (ticker)
);
CREATE TABLE prices (
  "ticker" VARCHAR,
  "date" DATE,
  "open" DOUBLE,
  "high" DOUBLE,
  "low" DOUBLE,
  "close" DOUBLE,
  "adj_close" DOUBLE,
  "volume" DOUBLE,
  "source" VARCHAR,
  "loaded_at" TIMESTAMP,
  PRIMARY KEY (ticker, date)
);
CREATE TABLE dividends (
  "ticker" VARCHAR,
  "ex_date" DATE,
  "amount" DOUBLE,
  "currency" VARCHAR,
  "source" VARCHAR,
  "loaded_at" TIMESTAMP,
  PRIMARY KEY (ticker, ex_date)
);
CREATE TABLE returns (
  "ticker" VARCHAR,
  "date" DATE,
  "prev_date" DATE,
  "ret" DOUBLE,
  "basis" VARCHAR,
  "source" VARCHAR,
  PRIMARY KEY (ticker, date)
);
CREATE TABLE runs (
  "run_id" BIGINT,
  "created_at" TIMESTAMP,
  "study" VARCHAR,
  "study_file" VARCHAR,
  "params" JSON,
  "impact_version" VARCHAR,
  "price_source" VARCHAR,
  "inputs_hash" VARCHAR,
  "notes" JSON,
  "command" VARCHAR,
  PRIMARY KEY (run_id)
);
CREATE TABLE event_days (
  "run_id" BIGINT,
  "event_id" VARCHAR,
  "exchange" VARCHAR,
  "event_ts" TIMESTAMP,
  "day0" DATE,
  "day0_open" TIMESTAMP,
  "day0_close" TIMESTAMP,
  "hours_to_close" DOUBLE,
  "during_session" BOOLEAN,
  "closed_weekdays" INTEGER,
  PRIMARY KEY (run_id, event_id, exchange)
);
CREATE TABLE model_fits (
  "run_id" BIGINT,
  "event_id" VARCHAR,
  "ticker" VARCHAR,
  "benchmark" VARCHAR,
  "model" VARCHAR,
  "alpha" DOUBLE,
  "beta" DOUBLE,
  "sigma" DOUBLE,
  "r2" DOUBLE,
  "nobs" INTEGER,
  "k" INTEGER,
  "df" INTEGER,
  "est_start" DATE,
  "est_end" DATE,
  PRIMARY KEY (run_id, event_id, ticker, model)
);
CREATE TABLE abnormal_returns (
  "run_id" BIGINT,
  "event_id" VARCHAR,
  "ticker" VARCHAR,
  "model" VARCHAR,
  "date" DATE,
  "rel_day" INTEGER,
  "ret" DOUBLE,
  "benchmark_ret" DOUBLE,
  "expected_ret" DOUBLE,
  "ar" DOUBLE,
  "se" DOUBLE,
  "t" DOUBLE,
  "p" DOUBLE,
  "sq_p" DOUBLE,
  "car" DOUBLE,
  "car_se" DOUBLE,
  PRIMARY KEY (run_id, event_id, ticker, model, date)
);
CREATE TABLE car (
  "run_id" BIGINT,
  "event_id" VARCHAR,
  "ticker" VARCHAR,
  "model" VARCHAR,
  "window_start" INTEGER,
  "window_end" INTEGER,
  "start_date" DATE,
  "end_date" DATE,
  "n_days" INTEGER,
  "car" DOUBLE,
  "se" DOUBLE,
  "t" DOUBLE,
  "df" INTEGER,
  "p" DOUBLE,
  "sq_p" DOUBLE,
  "sq_n" INTEGER,
  "bhar" DOUBLE,
  "status" VARCHAR,
  "reason" VARCHAR,
  PRIMARY KEY (run_id, event_id, ticker, model, window_start, window_end)
);
CREATE OR REPLACE VIEW latest_runs AS SELECT * FROM runs QUALIFY row_number()
  OVER (PARTITION BY study ORDER BY run_id DESC) = 1;
CREATE OR REPLACE VIEW day0 AS SELECT d.* FROM event_days d JOIN latest_runs USING (run_id);
"""


def _v1(con: duckdb.DuckDBPyConnection) -> None:
    for stmt in V1_SQL.split(";\n"):
        if stmt.strip():
            con.execute(stmt)
    con.execute("INSERT INTO _impact_meta VALUES ('schema_version', '1')")


def _v2(con: duckdb.DuckDBPyConnection) -> None:
    """Exchanges, events keyed by study, run-scoped details, migration history."""
    from impact.calendars import exchange_tz

    # events: keyed by (study, event_id) so that two studies may share an id
    con.execute(
        "CREATE TABLE events_v2 (event_id VARCHAR, ts TIMESTAMPTZ, ts_local VARCHAR, "
        "tz VARCHAR, date_only BOOLEAN, date_end DATE, title VARCHAR, source VARCHAR, "
        "category VARCHAR, notes VARCHAR, url VARCHAR, study VARCHAR, "
        "PRIMARY KEY (study, event_id))")
    con.execute("INSERT INTO events_v2 SELECT * FROM events")
    con.execute("DROP TABLE events")
    con.execute("ALTER TABLE events_v2 RENAME TO events")
    # run ids come from max(run_id) + 1 inside the run's transaction: no gaps
    con.execute("DROP SEQUENCE runs_seq")
    con.execute("ALTER TABLE model_fits ADD COLUMN est_window_start DATE")
    con.execute("ALTER TABLE model_fits ADD COLUMN est_window_end DATE")
    con.execute("ALTER TABLE model_fits ADD COLUMN n_excluded INTEGER")
    con.execute("ALTER TABLE model_fits ADD COLUMN params JSON")
    con.execute("ALTER TABLE abnormal_returns ADD COLUMN basis VARCHAR")
    con.execute("UPDATE abnormal_returns SET basis = r.basis FROM returns r "
                "WHERE r.ticker = abnormal_returns.ticker AND r.date = abnormal_returns.date")
    con.execute("ALTER TABLE car ADD COLUMN other_events VARCHAR")
    con.execute(
        "CREATE TABLE tests (run_id BIGINT, event_id VARCHAR, group_name VARCHAR, "
        "tickers VARCHAR, model VARCHAR, window_start INTEGER, window_end INTEGER, "
        "test VARCHAR, label VARCHAR, statistic DOUBLE, distribution VARCHAR, df DOUBLE, "
        "p DOUBLE, n INTEGER, status VARCHAR, reason VARCHAR, clustering_robust BOOLEAN, "
        "PRIMARY KEY (run_id, event_id, group_name, model, window_start, window_end, test))")
    con.execute(
        "CREATE TABLE aggregates (run_id BIGINT, event_id VARCHAR, group_name VARCHAR, "
        "tickers VARCHAR, model VARCHAR, window_start INTEGER, window_end INTEGER, n INTEGER, "
        "caar DOUBLE, se_cross_section DOUBLE, se_portfolio DOUBLE, se_model DOUBLE, "
        "dropped VARCHAR, "
        "PRIMARY KEY (run_id, event_id, group_name, model, window_start, window_end))")
    con.execute(
        "CREATE TABLE security_attributes (ticker VARCHAR, attribute VARCHAR, value DOUBLE, "
        "value_text VARCHAR, source VARCHAR, loaded_at TIMESTAMP, "
        "PRIMARY KEY (ticker, attribute))")
    con.execute(
        "CREATE TABLE cross_section (run_id BIGINT, event_id VARCHAR, model VARCHAR, "
        "window_start INTEGER, window_end INTEGER, formula VARCHAR, term VARCHAR, "
        "coef DOUBLE, se DOUBLE, t DOUBLE, p DOUBLE, nobs INTEGER, df_resid INTEGER, "
        "r2 DOUBLE, cov_type VARCHAR, descriptive BOOLEAN, notice VARCHAR, "
        "PRIMARY KEY (run_id, event_id, model, window_start, window_end, term))")
    con.execute(
        "CREATE TABLE sensitivity (run_id BIGINT, event_id VARCHAR, ticker VARCHAR, "
        "benchmark VARCHAR, beta DOUBLE, r2 DOUBLE, nobs INTEGER, window_start INTEGER, "
        "window_end INTEGER, car DOUBLE, se DOUBLE, t DOUBLE, p DOUBLE, status VARCHAR, "
        "reason VARCHAR, "
        "PRIMARY KEY (run_id, event_id, ticker, benchmark, window_start, window_end))")
    con.execute(
        "CREATE TABLE articles (article_id VARCHAR PRIMARY KEY, source VARCHAR, url VARCHAR, "
        "headline VARCHAR, publisher VARCHAR, published_at TIMESTAMPTZ, "
        "published_local VARCHAR, tz VARCHAR, zone_assumed BOOLEAN, time_status VARCHAR, "
        "time_text VARCHAR, body_hash VARCHAR, ingested_at TIMESTAMP)")
    con.execute(
        "CREATE TABLE article_mentions (article_id VARCHAR, ticker VARCHAR, mentions INTEGER, "
        "relevance DOUBLE, in_headline BOOLEAN, aliases VARCHAR, "
        "PRIMARY KEY (article_id, ticker))")
    con.execute(
        "CREATE TABLE news_events (event_id VARCHAR PRIMARY KEY, article_id VARCHAR, "
        "ts TIMESTAMPTZ, tz VARCHAR, title VARCHAR, source VARCHAR, tickers VARCHAR, "
        "status VARCHAR, confirmed_at TIMESTAMP, note VARCHAR)")
    con.execute(
        "CREATE TABLE update_log (update_id BIGINT, step VARCHAR, target VARCHAR, "
        "status VARCHAR, rows BIGINT, detail VARCHAR, started_at TIMESTAMP, "
        "finished_at TIMESTAMP, PRIMARY KEY (update_id, step, target))")
    con.execute(
        "CREATE TABLE backtest_runs (backtest_id BIGINT PRIMARY KEY, created_at TIMESTAMP, "
        "strategy VARCHAR, strategy_file VARCHAR, study VARCHAR, params JSON, stats JSON, "
        "price_source VARCHAR, impact_version VARCHAR)")
    con.execute(
        "CREATE TABLE backtest_trades (backtest_id BIGINT, trade_no INTEGER, event_id VARCHAR, "
        "ticker VARCHAR, status VARCHAR, reason VARCHAR, direction INTEGER, "
        "allowed_at TIMESTAMP, entry_date DATE, entry_time TIMESTAMP, entry_price DOUBLE, "
        "exit_date DATE, exit_time TIMESTAMP, exit_price DOUBLE, exit_reason VARCHAR, "
        "sessions_held INTEGER, notional DOUBLE, fx_entry DOUBLE, fx_exit DOUBLE, "
        "gross_return DOUBLE, cost DOUBLE, pnl DOUBLE, net_return DOUBLE, "
        "PRIMARY KEY (backtest_id, trade_no))")
    con.execute(
        "CREATE TABLE backtest_equity (backtest_id BIGINT, date DATE, equity DOUBLE, "
        "benchmark_equity DOUBLE, PRIMARY KEY (backtest_id, date))")
    con.execute(
        "CREATE TABLE aar (run_id BIGINT, event_id VARCHAR, group_name VARCHAR, "
        "model VARCHAR, rel_day INTEGER, n INTEGER, aar DOUBLE, se DOUBLE, caar DOUBLE, "
        "PRIMARY KEY (run_id, event_id, group_name, model, rel_day))")

    con.execute("CREATE TABLE _impact_migrations (version INTEGER PRIMARY KEY, "
                "description VARCHAR, applied_at TIMESTAMP)")
    con.execute("CREATE TABLE exchanges (exchange VARCHAR PRIMARY KEY, name VARCHAR, "
                "tz VARCHAR)")
    names = {"XNYS": "NYSE/Nasdaq", "XKRX": "KRX"}
    rows = con.execute("SELECT DISTINCT exchange FROM securities UNION "
                       "SELECT DISTINCT exchange FROM event_days").fetchall()
    for (ex,) in rows:
        con.execute("INSERT INTO exchanges VALUES (?, ?, ?)",
                    [ex, names.get(ex, ex), exchange_tz(ex)])
    con.execute("ALTER TABLE event_days ADD COLUMN calendar_days INTEGER")
    con.execute(
        "UPDATE event_days SET calendar_days = day0 - CAST(timezone(x.tz, "
        "timezone('UTC', event_days.event_ts)) AS DATE) "
        "FROM exchanges x WHERE x.exchange = event_days.exchange"
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "first schema: events, prices, returns, runs and results", _v1),
    Migration(2, "exchanges; events keyed by (study, event_id); calendar_days, nominal "
                 "estimation windows, return basis and overlapping events per run; no sequence",
              _v2),
)
assert [m.version for m in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    """Schema version of a database (0 for an empty one)."""
    names = {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
    ).fetchall()}
    if "_impact_meta" not in names:
        return 0
    rows = con.execute("SELECT value FROM _impact_meta WHERE key = 'schema_version'").fetchall()
    return int(rows[0][0]) if rows else 0


def migrate(con: duckdb.DuckDBPyConnection, target: int = SCHEMA_VERSION) -> list[int]:
    """Bring a database up to ``target``, one transaction per step.

    Parameters
    ----------
    con
        A writable connection.
    target
        The version to reach (tests build older databases with a lower target).

    Returns
    -------
    list of int
        The versions applied (empty when the database was current).
    """
    done: list[int] = []
    for m in MIGRATIONS:
        if m.version <= current_version(con) or m.version > target:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            m.apply(con)
            con.execute("UPDATE _impact_meta SET value = ? WHERE key = 'schema_version'",
                        [str(m.version)])
            if m.version >= 2:
                con.execute("INSERT INTO _impact_migrations VALUES (?, ?, ?)",
                            [m.version, m.description, datetime.now(UTC).replace(tzinfo=None)])
                if m.version == 2:
                    con.execute("INSERT INTO _impact_migrations VALUES (1, ?, NULL)",
                                [MIGRATIONS[0].description])
            if m.version == target == SCHEMA_VERSION:
                apply_interface(con)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        done.append(m.version)
    return done


def apply_interface(con: duckdb.DuckDBPyConnection) -> None:
    """Create the views and macros and every comment, including each view column's.

    A view column's comment is the one declared with the view, else the comment of
    the table column of the same name.
    """
    from impact.schema import VIEWS

    for stmt in interface_sql():
        con.execute(stmt)
    by_name: dict[str, str] = {}
    for t in TABLES:
        for c in t.columns:
            by_name.setdefault(c.name, c.comment)
    for v in VIEWS:
        cols = [r[0] for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
            "AND database_name = current_database() ORDER BY column_index", [v.name]
        ).fetchall()]
        for col in cols:
            comment = v.columns.get(col) or by_name.get(col)
            if comment is None:
                raise ValueError(f"view {v.name}: column {col} has no comment; declare it")
            quoted = "'" + comment.replace("'", "''") + "'"
            con.execute(f'COMMENT ON COLUMN {v.name}."{col}" IS {quoted}')
