"""The database schema, declared once: tables, columns, views and macros with comments.

This is the contract SQL users rely on. The DDL of the current version, every
``COMMENT ON``, the views and table macros, and ``docs/schema.md`` are all
generated from these declarations; :mod:`impact.migrations` brings an older
database up to them, and a test checks that migrating from the first version
gives exactly the tables declared here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Version of the schema written by this code; stored in ``_impact_meta``.
SCHEMA_VERSION = 2


@dataclass(frozen=True)
class Column:
    """A column: name, SQL type, comment."""

    name: str
    type: str
    comment: str


@dataclass(frozen=True)
class Table:
    """A table: name, comment, columns and primary key."""

    name: str
    comment: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()


def _c(name: str, type_: str, comment: str) -> Column:
    return Column(name, type_, comment)


RUN_ID = _c("run_id", "BIGINT", "The run (runs.run_id).")
EVENT_ID = _c("event_id", "VARCHAR", "The event (events.event_id).")
TICKER = _c("ticker", "VARCHAR", "Yahoo ticker of the security (securities.ticker).")
MODEL = _c("model", "VARCHAR",
           "Expected-return model: market (OLS a + b R_m), constant-mean, market-adjusted.")

TABLES: tuple[Table, ...] = (
    Table("_impact_meta", "Internal: key-value facts about this database (schema_version).", (
        _c("key", "VARCHAR", "Name of the fact."),
        _c("value", "VARCHAR", "Its value."),
    ), ("key",)),
    Table("_impact_migrations", "Internal: the schema migrations applied to this database.", (
        _c("version", "INTEGER", "Schema version the step leads to."),
        _c("description", "VARCHAR", "What the step changed."),
        _c("applied_at", "TIMESTAMP", "When it was applied here (UTC); NULL for version 1 "
           "of a database created before migrations were recorded."),
    ), ("version",)),
    Table("events", "Every dated fact of each study's event catalog: news, releases, "
          "statements, articles, market moves and closures. Upserted from the study file.", (
        EVENT_ID,
        _c("ts", "TIMESTAMPTZ", "The event's instant (shown in the session's TimeZone; "
           "see ts_local for the local time)."),
        _c("ts_local", "VARCHAR", "The instant as ISO 8601 local time with its UTC offset."),
        _c("tz", "VARCHAR", "IANA time zone of the place of the event."),
        _c("date_only", "BOOLEAN", "True when only the date is known: ts is then 12:00 local "
           "time (the catalog's documented rule)."),
        _c("date_end", "DATE", "Last day of a multi-day event, else NULL."),
        _c("title", "VARCHAR", "What happened."),
        _c("source", "VARCHAR", "The publication or record the event is taken from."),
        _c("category", "VARCHAR", "model-release, news, statement, article, market, "
           "market-closure or confounder."),
        _c("notes", "VARCHAR", "Remarks for the study (may be empty)."),
        _c("url", "VARCHAR", "Link to the source, if any."),
        _c("study", "VARCHAR", "Name of the study that defines the event (study.name)."),
    ), ("study", "event_id")),
    Table("securities", "Securities and benchmark indices with their exchange calendars.", (
        TICKER,
        _c("name", "VARCHAR", "Name in English."),
        _c("name_local", "VARCHAR", "Name in the local language, if given."),
        _c("exchange", "VARCHAR", "exchange_calendars name of the exchange whose sessions "
           "the security trades on (XNYS, XKRX, ...)."),
        _c("currency", "VARCHAR", "Currency of the prices (ISO 4217)."),
        _c("role", "VARCHAR", "security or benchmark."),
        _c("benchmark", "VARCHAR", "Default benchmark ticker of a security; NULL for a "
           "benchmark."),
    ), ("ticker",)),
    Table("exchanges", "Exchanges whose session calendars the securities trade on.", (
        _c("exchange", "VARCHAR", "exchange_calendars name (XNYS, XKRX, ...)."),
        _c("name", "VARCHAR", "Common name (NYSE/Nasdaq, KRX, ...)."),
        _c("tz", "VARCHAR", "IANA time zone of the exchange."),
    ), ("exchange",)),
    Table("prices", "Daily prices as delivered by the source. close is the as-traded "
          "(split-adjusted) close; adj_close the split- and dividend-adjusted close.", (
        TICKER,
        _c("date", "DATE", "Exchange-local trading date."),
        _c("open", "DOUBLE", "Opening price (NULL if the source has none)."),
        _c("high", "DOUBLE", "High."),
        _c("low", "DOUBLE", "Low."),
        _c("close", "DOUBLE", "Close, split-adjusted, not dividend-adjusted."),
        _c("adj_close", "DOUBLE", "Close adjusted for splits and dividends (NULL if the "
           "source has none)."),
        _c("volume", "DOUBLE", "Volume in the source's unit (KOSPI: thousands of shares)."),
        _c("source", "VARCHAR", "Where the row came from: yahoo or snapshot:<directory>."),
        _c("loaded_at", "TIMESTAMP", "When the row was written or last changed (UTC)."),
    ), ("ticker", "date")),
    Table("dividends", "Cash dividends per share, in the currency and share basis of the "
          "prices (split-adjusted).", (
        TICKER,
        _c("ex_date", "DATE", "First session trading without the dividend."),
        _c("amount", "DOUBLE", "Gross cash amount per share."),
        _c("currency", "VARCHAR", "Currency of the amount, if known."),
        _c("source", "VARCHAR", "Where the row came from."),
        _c("loaded_at", "TIMESTAMP", "When the row was written (UTC)."),
    ), ("ticker", "ex_date")),
    Table("returns", "Daily simple returns on each session of the security's own exchange, "
          "with the basis used. A session without a price is a row with basis 'gap' and "
          "ret NULL, never a silent shift.", (
        TICKER,
        _c("date", "DATE", "Session date (exchange-local)."),
        _c("prev_date", "DATE", "The previous session of the same exchange."),
        _c("ret", "DOUBLE", "Return from prev_date's close to date's close, as a decimal "
           "fraction (-0.1697 = -16.97%). NULL at a gap."),
        _c("basis", "VARCHAR", "adj_close, close+dividends (close plus the cash dividend "
           "going ex that day), close, or gap."),
        _c("source", "VARCHAR", "Source of the prices used."),
    ), ("ticker", "date")),
    Table("runs", "One row per execution of a study. Results tables are keyed by run_id; "
          "re-running adds a run and never changes an older one.", (
        RUN_ID,
        _c("created_at", "TIMESTAMP", "When the run was computed (UTC)."),
        _c("study", "VARCHAR", "Study name (study.name in the study file)."),
        _c("study_file", "VARCHAR", "Path of the study file."),
        _c("params", "JSON", "Parameters: events, models, windows, price source, securities "
           "and benchmarks."),
        _c("impact_version", "VARCHAR", "Version of impact that computed the run."),
        _c("price_source", "VARCHAR", "yahoo or snapshot:<directory>."),
        _c("inputs_hash", "VARCHAR", "SHA-256 of the study file and the prices and dividends "
           "used: equal hashes mean equal inputs."),
        _c("notes", "JSON", "Warnings and remarks (list of strings): gaps, excluded sessions."),
        _c("command", "VARCHAR", "The command line that made the run, if any."),
    ), ("run_id",)),
    Table("event_days", "Day 0 of every catalog event on every exchange of the study: the "
          "first session whose close is at or after the event.", (
        RUN_ID, EVENT_ID,
        _c("exchange", "VARCHAR", "exchange_calendars name."),
        _c("event_ts", "TIMESTAMP", "The event's instant in UTC."),
        _c("day0", "DATE", "Day 0 on this exchange."),
        _c("day0_open", "TIMESTAMP", "Day 0's session open, UTC."),
        _c("day0_close", "TIMESTAMP", "Day 0's session close, UTC."),
        _c("hours_to_close", "DOUBLE", "Hours from the event to day 0's close."),
        _c("during_session", "BOOLEAN", "True when the event fell while day 0's session "
           "was open."),
        _c("closed_weekdays", "INTEGER", "Weekdays between the event's local date and day 0 "
           "on which the exchange was closed (holidays): the sessions lost to closures."),
        _c("calendar_days", "INTEGER", "Calendar days from the event's local date (in the "
           "exchange's zone) to day 0."),
    ), ("run_id", "event_id", "exchange")),
    Table("model_fits", "Expected-return model fitted over each estimation window "
          "(market, constant-mean, market-adjusted, scholes-williams, dimson or a "
          "multi-factor model named in the study file).", (
        RUN_ID, EVENT_ID, TICKER,
        _c("benchmark", "VARCHAR", "Benchmark ticker (unused by constant-mean)."),
        MODEL,
        _c("alpha", "DOUBLE", "Intercept (market) or mean return (constant-mean); NULL for "
           "market-adjusted."),
        _c("beta", "DOUBLE", "Slope on the benchmark return (market); NULL otherwise."),
        _c("sigma", "DOUBLE", "Residual standard deviation s = sqrt(SSR / (nobs - k))."),
        _c("r2", "DOUBLE", "R-squared (market model)."),
        _c("nobs", "INTEGER", "Estimation-window returns used (L1)."),
        _c("k", "INTEGER", "Parameters estimated (2 market, 1 constant-mean, 0 "
           "market-adjusted)."),
        _c("df", "INTEGER", "Degrees of freedom of the t tests, nobs - k."),
        _c("est_start", "DATE", "First estimation-window session used."),
        _c("est_end", "DATE", "Last estimation-window session used."),
        _c("est_window_start", "DATE", "First session of the nominal estimation window "
           "(NULL for runs stored before schema 2)."),
        _c("est_window_end", "DATE", "Last session of the nominal estimation window."),
        _c("n_excluded", "INTEGER", "Sessions of the nominal window left out because they lie "
           "in another studied event's event window."),
        _c("params", "JSON", "Every estimated parameter by name, e.g. {\"alpha\": ..., "
           "\"beta\": ..., \"nasdaq_prev\": ...} (multi-factor loadings included)."),
    ), ("run_id", "event_id", "ticker", "model")),
    Table("abnormal_returns", "Daily abnormal returns over each event window.", (
        RUN_ID, EVENT_ID, TICKER, MODEL,
        _c("date", "DATE", "Session date on the security's exchange."),
        _c("rel_day", "INTEGER", "Sessions from day 0 on the security's own exchange."),
        _c("ret", "DOUBLE", "Security return (decimal fraction); NULL at a gap."),
        _c("benchmark_ret", "DOUBLE", "Benchmark return that day."),
        _c("expected_ret", "DOUBLE", "Expected return under the model."),
        _c("ar", "DOUBLE", "Abnormal return = ret - expected_ret."),
        _c("se", "DOUBLE", "Standard error of the AR with the forecast-error correction "
           "(S_it)."),
        _c("t", "DOUBLE", "Standardized AR = ar / se, distributed t(df)."),
        _c("p", "DOUBLE", "Two-sided p-value of t."),
        _c("sq_p", "DOUBLE", "Sample-quantile p-value, one-sided in the direction of ar: "
           "min(share of estimation residuals <= ar, share >= ar); 0 = beyond all of them."),
        _c("car", "DOUBLE", "Cumulative AR from the first event-window day to this day."),
        _c("car_se", "DOUBLE", "Standard error of car (forecast-error corrected)."),
        _c("basis", "VARCHAR", "How ret was computed: adj_close, close+dividends, close, or "
           "gap (see returns.basis)."),
    ), ("run_id", "event_id", "ticker", "model", "date")),
    Table("car", "Cumulative abnormal returns over the study's CAR windows, with the "
          "single-security t and sample-quantile tests and the buy-and-hold abnormal return.", (
        RUN_ID, EVENT_ID, TICKER, MODEL,
        _c("window_start", "INTEGER", "First day of the window, relative to day 0."),
        _c("window_end", "INTEGER", "Last day of the window, relative to day 0."),
        _c("start_date", "DATE", "Date of the window's first session."),
        _c("end_date", "DATE", "Date of the window's last session."),
        _c("n_days", "INTEGER", "Sessions in the window."),
        _c("car", "DOUBLE", "Sum of the window's abnormal returns."),
        _c("se", "DOUBLE", "sqrt(Var(CAR)), Var(CAR) = 1'V1 with V = s^2 [I + X_W "
           "(X_E'X_E)^-1 X_W'] (forecast-error corrected)."),
        _c("t", "DOUBLE", "car / se."),
        _c("df", "INTEGER", "Degrees of freedom, nobs - k."),
        _c("p", "DOUBLE", "Two-sided p-value of t under t(df)."),
        _c("sq_p", "DOUBLE", "Sample-quantile p-value (Gelbach-Helland-Klick), one-sided in "
           "the direction of car: min(share of estimation-window n_days-day residual sums "
           "<= car, share >= car); 0 = beyond all of them."),
        _c("sq_n", "INTEGER", "Number of estimation-window sums behind sq_p."),
        _c("bhar", "DOUBLE", "Buy-and-hold abnormal return: prod(1+ret) - "
           "prod(1+expected_ret)."),
        _c("status", "VARCHAR", "ok, or incomplete when a day of the window has no AR."),
        _c("reason", "VARCHAR", "Why the window is incomplete."),
        _c("other_events", "VARCHAR", "Other studied events whose day 0 on this exchange falls "
           "inside the window (comma-separated; NULL if none): the CAR mixes their effects."),
    ), ("run_id", "event_id", "ticker", "model", "window_start", "window_end")),
    Table("tests", "Tests of no abnormal return over each CAR window, per event, model and "
          "group of securities: one security (its ticker), the securities of one exchange, "
          "which share day 0 (e.g. XKRX), or all. Tests that assume independent securities "
          "are marked clustering_robust = false. Definitions: docs/tests.md.", (
        RUN_ID, EVENT_ID,
        _c("group_name", "VARCHAR", "A ticker, an exchange (its securities share day 0) or "
           "'all'."),
        _c("tickers", "VARCHAR", "The securities in the group (comma-separated)."),
        MODEL,
        _c("window_start", "INTEGER", "First day of the window, relative to day 0."),
        _c("window_end", "INTEGER", "Last day of the window, relative to day 0."),
        _c("test", "VARCHAR", "Stable test id: t_single, sq_single, t_cs, bw_cda, patell, bmp, "
           "kp_bmp, kp_patell, corrado, corrado_cowan, grank, sign, gsign, wilcoxon, skew_t, "
           "bootstrap_caar, dummy_wald, portfolio_wald, sur_wald, sur_joint."),
        _c("label", "VARCHAR", "The test's name in words."),
        _c("statistic", "DOUBLE", "The test statistic (NULL when not computed)."),
        _c("distribution", "VARCHAR", "Null distribution: t, normal, exact, empirical, "
           "bootstrap, or F(q, df) for Wald tests."),
        _c("df", "DOUBLE", "Degrees of freedom of a t distribution, or the denominator "
           "degrees of freedom of an F."),
        _c("p", "DOUBLE", "Two-sided p-value (the Wald tests' F is one-sided by nature; the "
           "sample-quantile p is one-sided in the CAR's direction)."),
        _c("n", "INTEGER", "Securities used."),
        _c("status", "VARCHAR", "ok, or 'not computed'."),
        _c("reason", "VARCHAR", "Why the test was not computed."),
        _c("clustering_robust", "BOOLEAN", "True when the test stays valid if the securities "
           "share an event date (cross-correlated abnormal returns)."),
    ), ("run_id", "event_id", "group_name", "model", "window_start", "window_end", "test")),
    Table("aggregates", "CAAR across the securities of a group over each CAR window, with "
          "three standard errors; event '*' averages across all studied events.", (
        RUN_ID,
        _c("event_id", "VARCHAR", "The event, or '*' for the average across events."),
        _c("group_name", "VARCHAR", "An exchange or 'all'."),
        _c("tickers", "VARCHAR", "The securities averaged."),
        MODEL,
        _c("window_start", "INTEGER", "First day of the window."),
        _c("window_end", "INTEGER", "Last day of the window."),
        _c("n", "INTEGER", "Securities with an abnormal return on every day of the window."),
        _c("caar", "DOUBLE", "Mean CAR across the securities (= sum of the AARs)."),
        _c("se_cross_section", "DOUBLE", "sd(CAR_i) / sqrt(n): assumes independent "
           "securities."),
        _c("se_portfolio", "DOUBLE", "Brown-Warner portfolio standard error sqrt(L) S from "
           "the estimation-window portfolio residuals: robust to cross-correlation."),
        _c("se_model", "DOUBLE", "sqrt(sum_i Var(CAR_i)) / n with the forecast-error-corrected "
           "variances: assumes independent securities."),
        _c("dropped", "VARCHAR", "Securities left out and why."),
    ), ("run_id", "event_id", "group_name", "model", "window_start", "window_end")),
    Table("aar", "Average abnormal return across the securities of a group on each "
          "event-window day, with its cross-sectional standard error and the running CAAR.", (
        RUN_ID, EVENT_ID,
        _c("group_name", "VARCHAR", "An exchange or 'all'."),
        MODEL,
        _c("rel_day", "INTEGER", "Day relative to day 0."),
        _c("n", "INTEGER", "Securities with an abnormal return that day."),
        _c("aar", "DOUBLE", "Mean abnormal return."),
        _c("se", "DOUBLE", "Cross-sectional standard error sd / sqrt(n)."),
        _c("caar", "DOUBLE", "Running sum of the AARs from the first event-window day."),
    ), ("run_id", "event_id", "group_name", "model", "rel_day")),
    Table("security_attributes", "Characteristics of securities for cross-sectional "
          "regressions, one row per security and attribute, filled from the CSV named in "
          "a study's [study.cross_section] attributes.", (
        TICKER,
        _c("attribute", "VARCHAR", "The characteristic (a CSV column name)."),
        _c("value", "DOUBLE", "Its value when numeric."),
        _c("value_text", "VARCHAR", "Its value when text (a category)."),
        _c("source", "VARCHAR", "The CSV it came from."),
        _c("loaded_at", "TIMESTAMP", "When it was written (UTC)."),
    ), ("ticker", "attribute")),
    Table("cross_section", "Second-stage regression of CARs on security characteristics "
          "(one row per term), with heteroskedasticity-robust standard errors. With few "
          "securities it is descriptive: see descriptive and notice.", (
        RUN_ID, EVENT_ID, MODEL,
        _c("window_start", "INTEGER", "First day of the CAR window explained."),
        _c("window_end", "INTEGER", "Last day of the CAR window explained."),
        _c("formula", "VARCHAR", "The formula, e.g. car ~ memory_maker."),
        _c("term", "VARCHAR", "The regressor (Intercept, an attribute, a category level)."),
        _c("coef", "DOUBLE", "Its coefficient."),
        _c("se", "DOUBLE", "Robust standard error (cov_type)."),
        _c("t", "DOUBLE", "coef / se."),
        _c("p", "DOUBLE", "Two-sided p-value against t(df_resid)."),
        _c("nobs", "INTEGER", "Securities in the regression."),
        _c("df_resid", "INTEGER", "Residual degrees of freedom."),
        _c("r2", "DOUBLE", "R-squared."),
        _c("cov_type", "VARCHAR", "Covariance estimator, e.g. HC1."),
        _c("descriptive", "BOOLEAN", "True when there are too few securities for inference "
           "(nobs < 10 or df_resid < 5): read the coefficients as a description."),
        _c("notice", "VARCHAR", "The sentence the report prints about it."),
    ), ("run_id", "event_id", "model", "window_start", "window_end", "term")),
    Table("sensitivity", "The market model of a security against other benchmarks, for the "
          "primary event (a sector index that fell on the same news absorbs part of the "
          "effect).", (
        RUN_ID, EVENT_ID, TICKER,
        _c("benchmark", "VARCHAR", "The benchmark of this fit (the security's own first)."),
        _c("beta", "DOUBLE", "Slope on that benchmark."),
        _c("r2", "DOUBLE", "R-squared over the estimation window."),
        _c("nobs", "INTEGER", "Estimation-window returns used."),
        _c("window_start", "INTEGER", "First day of the CAR window."),
        _c("window_end", "INTEGER", "Last day of the CAR window."),
        _c("car", "DOUBLE", "CAR against this benchmark."),
        _c("se", "DOUBLE", "Its forecast-error-corrected standard error."),
        _c("t", "DOUBLE", "car / se."),
        _c("p", "DOUBLE", "Two-sided p-value."),
        _c("status", "VARCHAR", "ok or incomplete."),
        _c("reason", "VARCHAR", "Why incomplete."),
    ), ("run_id", "event_id", "ticker", "benchmark", "window_start", "window_end")),
    Table("articles", "News articles and feed items ingested with impact events ingest: one "
          "row per article (duplicates by URL or by text are merged).", (
        _c("article_id", "VARCHAR", "Stable id: a-<first 12 hex digits of the text hash>."),
        _c("source", "VARCHAR", "Where it was read from: a file path, a URL or a feed URL."),
        _c("url", "VARCHAR", "The article's URL, if known."),
        _c("headline", "VARCHAR", "The headline."),
        _c("publisher", "VARCHAR", "The publisher, if stated or configured."),
        _c("published_at", "TIMESTAMPTZ", "Publication time the page states (NULL if none)."),
        _c("published_local", "VARCHAR", "The same as local ISO 8601 time with its offset."),
        _c("tz", "VARCHAR", "IANA zone of the publication time."),
        _c("zone_assumed", "BOOLEAN", "True when the page gave no zone and the publisher's "
           "default zone was used."),
        _c("time_status", "VARCHAR", "ok, or needs_timestamp when no publication time was "
           "found (impact never guesses)."),
        _c("time_text", "VARCHAR", "The text the time was read from."),
        _c("body_hash", "VARCHAR", "SHA-256 of the normalized body (duplicate detection)."),
        _c("ingested_at", "TIMESTAMP", "When it was ingested (UTC)."),
    ), ("article_id",)),
    Table("article_mentions", "Securities an article is about, from the alias table "
          "(events/aliases.csv), with mention counts and relevance.", (
        _c("article_id", "VARCHAR", "The article."),
        TICKER,
        _c("mentions", "INTEGER", "Times the security is named in the headline and body."),
        _c("relevance", "DOUBLE", "Relevance score in [0, 1] (docs/news.md)."),
        _c("in_headline", "BOOLEAN", "Named in the headline."),
        _c("aliases", "VARCHAR", "The names found."),
    ), ("article_id", "ticker")),
    Table("news_events", "Events proposed from ingested articles. Candidates until confirmed "
          "with impact events confirm; only confirmed events enter studies (as articles "
          "on the timeline of the studies whose securities they name).", (
        _c("event_id", "VARCHAR", "Event id: news-<article id>."),
        _c("article_id", "VARCHAR", "The article."),
        _c("ts", "TIMESTAMPTZ", "The event time (the publication time, or a corrected one)."),
        _c("tz", "VARCHAR", "IANA zone of the event time."),
        _c("title", "VARCHAR", "The headline."),
        _c("source", "VARCHAR", "The publisher or the source."),
        _c("tickers", "VARCHAR", "Linked securities, most relevant first."),
        _c("status", "VARCHAR", "candidate, needs_timestamp or confirmed."),
        _c("confirmed_at", "TIMESTAMP", "When it was confirmed (UTC)."),
        _c("note", "VARCHAR", "E.g. 'time corrected from ...'."),
    ), ("event_id",)),
    Table("update_log", "What each impact update did, step by step.", (
        _c("update_id", "BIGINT", "The update (one per impact update)."),
        _c("step", "VARCHAR", "prices, feed, study or summary."),
        _c("target", "VARCHAR", "The ticker, feed or study of the step."),
        _c("status", "VARCHAR", "changed, unchanged, failed or skipped."),
        _c("rows", "BIGINT", "Rows written (prices, articles) or the run id (study)."),
        _c("detail", "VARCHAR", "What happened, in words."),
        _c("started_at", "TIMESTAMP", "Start of the step (UTC)."),
        _c("finished_at", "TIMESTAMP", "End of the step (UTC)."),
    ), ("update_id", "step", "target")),
    Table("backtest_runs", "One row per impact backtest: the strategy, its parameters and "
          "the summary statistics.", (
        _c("backtest_id", "BIGINT", "The backtest."),
        _c("created_at", "TIMESTAMP", "When it ran (UTC)."),
        _c("strategy", "VARCHAR", "Strategy name."),
        _c("strategy_file", "VARCHAR", "Path of the strategy file."),
        _c("study", "VARCHAR", "The study whose events, securities and prices it used."),
        _c("params", "JSON", "The strategy's rules (direction, entry, holding, stop, costs, "
           "sizing, currency)."),
        _c("stats", "JSON", "total_return, annualized_return, volatility, sharpe, "
           "max_drawdown, hit_rate, mean_trade_return, mean_trade_t, n_trades, n_skipped."),
        _c("price_source", "VARCHAR", "Where the prices came from."),
        _c("impact_version", "VARCHAR", "Version of impact."),
    ), ("backtest_id",)),
    Table("backtest_trades", "Each trade of a backtest (status taken), and each candidate "
          "skipped with its reason (status skipped).", (
        _c("backtest_id", "BIGINT", "The backtest."),
        _c("trade_no", "INTEGER", "Order of the row within the backtest."),
        EVENT_ID, TICKER,
        _c("status", "VARCHAR", "taken or skipped."),
        _c("reason", "VARCHAR", "Why a candidate was skipped."),
        _c("direction", "INTEGER", "+1 long, -1 short."),
        _c("allowed_at", "TIMESTAMP", "UTC instant from which the trade was allowed: the news "
           "(and the signal) being public."),
        _c("entry_date", "DATE", "Entry session (the security's exchange)."),
        _c("entry_time", "TIMESTAMP", "Entry instant (that session's open or close), UTC."),
        _c("entry_price", "DOUBLE", "Entry price (as traded)."),
        _c("exit_date", "DATE", "Exit session."),
        _c("exit_time", "TIMESTAMP", "Exit instant, UTC."),
        _c("exit_price", "DOUBLE", "Exit price."),
        _c("exit_reason", "VARCHAR", "holding or stop."),
        _c("sessions_held", "INTEGER", "Sessions held."),
        _c("notional", "DOUBLE", "Position size in the reporting currency."),
        _c("fx_entry", "DOUBLE", "Price-currency units per reporting-currency unit at entry."),
        _c("fx_exit", "DOUBLE", "The same at exit."),
        _c("gross_return", "DOUBLE", "direction x (exit / entry - 1)."),
        _c("cost", "DOUBLE", "Costs in the reporting currency."),
        _c("pnl", "DOUBLE", "Profit and loss in the reporting currency, net of costs."),
        _c("net_return", "DOUBLE", "pnl / notional."),
    ), ("backtest_id", "trade_no")),
    Table("backtest_equity", "Daily equity of a backtest and of a buy-and-hold benchmark with "
          "the same capital.", (
        _c("backtest_id", "BIGINT", "The backtest."),
        _c("date", "DATE", "Calendar date."),
        _c("equity", "DOUBLE", "Capital plus realized P&L, reporting currency."),
        _c("benchmark_equity", "DOUBLE", "The same capital held in the benchmark."),
    ), ("backtest_id", "date")),
)

@dataclass(frozen=True)
class View:
    """A view: name, comment, SQL, and comments of the columns not named after a table's."""

    name: str
    comment: str
    sql: str
    columns: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Macro:
    """A table macro: name, parameters, comment, SQL."""

    name: str
    params: tuple[str, ...]
    comment: str
    sql: str


VIEWS: tuple[View, ...] = (
    View("latest_runs", "The most recent run of each study.",
         "SELECT * FROM runs QUALIFY row_number() OVER (PARTITION BY study "
         "ORDER BY run_id DESC) = 1"),
    View("latest_car", "CARs of the latest run of each study (car rows plus the study name).",
         "SELECT r.study, c.* FROM car c JOIN latest_runs r USING (run_id)",
         {"study": "Study name of the run."}),
    View("latest_abnormal_returns", "Daily abnormal returns of the latest run of each study.",
         "SELECT r.study, a.* FROM abnormal_returns a JOIN latest_runs r USING (run_id)"),
    View("latest_model_fits", "Model fits of the latest run of each study.",
         "SELECT r.study, f.* FROM model_fits f JOIN latest_runs r USING (run_id)"),
    View("day0", "Day 0 of each event on each exchange (latest run of each study): the "
         "first session closing at or after the news, the hours from the news to that close, "
         "and the sessions lost to closures in between.",
         "SELECT r.study, d.run_id, d.event_id, e.category, e.title, d.exchange, "
         "x.name AS exchange_name, e.ts_local AS news_local, d.day0, d.day0_close AS "
         "day0_close_utc, round(d.hours_to_close, 2) AS hours_from_news, d.during_session, "
         "d.closed_weekdays AS sessions_lost, d.calendar_days "
         "FROM event_days d JOIN latest_runs r USING (run_id) "
         "LEFT JOIN events e ON e.study = r.study AND e.event_id = d.event_id "
         "LEFT JOIN exchanges x USING (exchange)",
         {"exchange_name": "Common name of the exchange.",
          "news_local": "The event's instant as local time with its UTC offset.",
          "day0_close_utc": "Day 0's session close, UTC.",
          "hours_from_news": "Hours from the news to day 0's close: how long the exchange "
                             "took to react.",
          "sessions_lost": "Weekdays between the news and day 0 on which the exchange was "
                           "closed (holidays)."}),
    View("caar", "Cumulative average abnormal return across the securities of each event, "
         "per run, model and window (status ok only). car_sd is the cross-sectional standard "
         "deviation; no test here: securities sharing a day 0 are cross-correlated.",
         "SELECT run_id, event_id, model, window_start, window_end, count(*) AS n, "
         "avg(car) AS caar, stddev_samp(car) AS car_sd, min(car) AS min_car, "
         "max(car) AS max_car, list(ticker ORDER BY ticker) AS tickers "
         "FROM car WHERE status = 'ok' GROUP BY ALL",
         {"n": "Securities with a complete window.",
          "caar": "Mean CAR across the securities (equal weights).",
          "car_sd": "Cross-sectional standard deviation of the CARs (n - 1).",
          "min_car": "Smallest CAR.", "max_car": "Largest CAR.",
          "tickers": "The securities averaged."}),
    View("event_timeline", "Every catalog event in time order with its day 0 on each exchange "
         "(latest run of its study); confounders flagged.",
         "SELECT e.ts, e.ts_local, e.tz, e.event_id, e.category, "
         "e.category = 'confounder' AS is_confounder, e.title, e.source, e.study, "
         "string_agg(d.exchange || ' ' || strftime(d.day0, '%Y-%m-%d'), ', ' "
         "ORDER BY d.exchange) AS day0s "
         "FROM events e LEFT JOIN (SELECT r.study, d.* FROM event_days d JOIN latest_runs r "
         "USING (run_id)) d ON d.study = e.study AND d.event_id = e.event_id "
         "GROUP BY ALL ORDER BY e.ts",
         {"is_confounder": "True for confounding news (category confounder).",
          "day0s": "Day 0 on each exchange, e.g. 'XKRX 2025-01-31, XNYS 2025-01-27'."}),
)

MACROS: tuple[Macro, ...] = (
    Macro("car_between", ("event_id_", "ticker_", "from_day", "to_day"),
          "CAR of one security for one event between two relative days (inclusive), per "
          "model, from the latest run: car_between('deepseek-app-store', 'NVDA', 0, 2). "
          "complete is false when a day in the range has no abnormal return.",
          "SELECT model, sum(ar) AS car, count(ar) AS n_days, "
          "count(ar) = to_day - from_day + 1 AS complete "
          "FROM latest_abnormal_returns WHERE event_id = event_id_ AND ticker = ticker_ "
          "AND rel_day BETWEEN from_day AND to_day GROUP BY model ORDER BY model"),
    Macro("confounders", ("event_id_",),
          "Confounding news whose day 0 falls inside the event window of an event, on the "
          "same exchange (latest run): confounders('deepseek-app-store').",
          "WITH win AS (SELECT s.exchange, min(a.date) AS first_day, max(a.date) AS last_day "
          "FROM latest_abnormal_returns a JOIN securities s USING (ticker) "
          "WHERE a.event_id = event_id_ GROUP BY s.exchange) "
          "SELECT d.exchange, d.day0, d.event_id, e.title, e.source "
          "FROM win JOIN day0 d ON d.exchange = win.exchange "
          "AND d.day0 BETWEEN win.first_day AND win.last_day "
          "JOIN events e ON e.study = d.study AND e.event_id = d.event_id "
          "WHERE e.category = 'confounder' "
          "ORDER BY d.day0, d.exchange, d.event_id"),
)

TABLE_NAMES = tuple(t.name for t in TABLES)


def create_tables_sql() -> list[str]:
    """CREATE TABLE statements of the current version (for reference and tests)."""
    out = []
    for t in TABLES:
        cols = ",\n  ".join(f'"{c.name}" {c.type}' for c in t.columns)
        pk = f",\n  PRIMARY KEY ({', '.join(t.primary_key)})" if t.primary_key else ""
        out.append(f"CREATE TABLE {t.name} (\n  {cols}{pk}\n)")
    return out


def interface_sql() -> list[str]:
    """Views, macros and every COMMENT ON of the current version (idempotent)."""
    out: list[str] = []
    for t in TABLES:
        out.append(f"COMMENT ON TABLE {t.name} IS {_q(t.comment)}")
        for c in t.columns:
            out.append(f'COMMENT ON COLUMN {t.name}."{c.name}" IS {_q(c.comment)}')
    for v in VIEWS:
        out.append(f"CREATE OR REPLACE VIEW {v.name} AS {v.sql}")
        out.append(f"COMMENT ON VIEW {v.name} IS {_q(v.comment)}")
    for m in MACROS:
        out.append(f"CREATE OR REPLACE MACRO {m.name}({', '.join(m.params)}) AS TABLE {m.sql}")
        out.append(f"COMMENT ON MACRO TABLE {m.name} IS {_q(m.comment)}")
    return out


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def schema_markdown() -> str:
    """The schema as Markdown (``docs/schema.md`` is this text)."""
    lines = [
        "# Database schema",
        "",
        "Generated from `impact/schema.py` (`impact schema > docs/schema.md`); a "
        "test fails when this file is stale. The same comments are in the database: "
        "`SELECT table_name, comment FROM duckdb_tables()`.",
        "",
        f"Schema version: {SCHEMA_VERSION}.",
        "",
    ]
    for t in TABLES:
        lines += [f"## `{t.name}`", "", t.comment, ""]
        if t.primary_key:
            lines += [f"Key: `{', '.join(t.primary_key)}`.", ""]
        lines += ["| column | type | meaning |", "|---|---|---|"]
        lines += [f"| `{c.name}` | {c.type} | {c.comment} |" for c in t.columns]
        lines.append("")
    lines += ["## Views", ""]
    for v in VIEWS:
        lines += [f"### `{v.name}`", "", v.comment, "", "```sql", v.sql, "```", ""]
    lines += ["## Table macros", ""]
    for m in MACROS:
        lines += [f"### `{m.name}({', '.join(m.params)})`", "", m.comment, "", "```sql",
                  m.sql, "```", ""]
    return "\n".join(lines)
