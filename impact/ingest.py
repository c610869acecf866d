"""News ingestion into the database: articles, the securities they name, candidate events.

:mod:`impact.news` reads an article or a feed (pure); this module fetches a path
or URL, stores what it read, merges duplicates (same URL or same text), and keeps
the proposed events as candidates until a person confirms them
(:func:`confirm`). Only confirmed events enter studies.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb

from impact.catalog import Event
from impact.errors import InputError, SourceError
from impact.storage import fetch_one, transaction

#: Mentions below this relevance are stored but not linked to the event.
MIN_RELEVANCE = 0.2


@dataclass
class IngestResult:
    """What one ingestion did."""

    target: str
    new: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)
    needs_timestamp: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def fetch_url(url: str, *, retries: int = 3, backoff: float = 1.0,
              sleep: Callable[[float], None] = time.sleep, timeout: float = 20.0) -> bytes:
    """GET a URL with retries and backoff.

    Raises
    ------
    SourceError
        After the last failed attempt.
    """
    delay, last = backoff, ""
    for attempt in range(1, retries + 1):
        try:
            req = urllib.request.Request(url, headers={"User-Agent": "impact"})
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                data: bytes = resp.read()
                return data
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            last = f"{type(exc).__name__}: {exc}"
            if attempt < retries:
                sleep(delay)
                delay *= 2
    raise SourceError(f"could not fetch {url} after {retries} attempts ({last})")


def _is_feed(data: bytes, name: str) -> bool:
    head = data[:400].lstrip().lower()
    return (name.endswith((".rss", ".atom", ".xml")) or head.startswith(b"<rss")
            or b"<rss" in head or b"<feed" in head)


def ingest(
    con: duckdb.DuckDBPyConnection,
    target: str,
    *,
    publisher: str | None = None,
    publisher_tz: str | None = None,
    reference_time: datetime | None = None,
    aliases_path: Path | None = None,
    fetch: Callable[[str], bytes] = fetch_url,
) -> IngestResult:
    """Ingest an article (text or HTML file or URL) or a feed (RSS/Atom file or URL).

    Every article is written in one transaction with its mentions and its
    candidate event; an article already stored (same URL or same text) is merged.

    Raises
    ------
    InputError
        If the file does not exist or a feed cannot be read.
    SourceError
        If a URL cannot be fetched.
    """
    from impact import news

    if publisher_tz is not None:
        try:
            ZoneInfo(publisher_tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise InputError(f"'{publisher_tz}' is not an IANA time zone (e.g. Asia/Seoul)"
                             ) from None
    is_url = target.startswith(("http://", "https://"))
    if is_url:
        data = fetch(target)
    else:
        path = Path(target)
        if not path.is_file():
            raise InputError(f"{target}: no such file (give an article, an HTML page, a feed "
                             f"or a URL)")
        data = path.read_bytes()
    aliases = news.load_aliases(aliases_path)
    result = IngestResult(target=target)
    if _is_feed(data, target.lower()):
        items = news.parse_feed(data)
        for item in items:
            text = "\n".join(x for x in (item.title, item.summary) if x)
            art = news.parse_article(text, source=item.link or target, publisher=publisher,
                                     publisher_tz=publisher_tz, reference_time=reference_time,
                                     aliases=aliases)
            when = item.published
            _store(con, art, url=item.link, feed=target, published=when, result=result)
        return result
    text = data.decode("utf-8", errors="replace")
    html = target.lower().endswith((".html", ".htm")) or "<html" in text[:2000].lower()
    art = news.parse_article(text, source=target, html=html, publisher=publisher,
                             publisher_tz=publisher_tz, reference_time=reference_time,
                             aliases=aliases)
    _store(con, art, url=target if is_url else None, feed=None, published=None, result=result)
    return result


def _store(con: duckdb.DuckDBPyConnection, art: object, *, url: str | None, feed: str | None,
           published: datetime | None, result: IngestResult) -> None:
    from impact.news import Article

    assert isinstance(art, Article)
    article_id = "a-" + art.body_hash[:12]
    dup = fetch_one(con, "SELECT article_id FROM articles WHERE article_id = ? "
                         "OR body_hash = ? OR (url IS NOT NULL AND url = ?)",
                    [article_id, art.body_hash, url])
    if dup is not None:
        result.merged.append(str(dup[0]))
        return
    t = art.time
    ts, tz, status, zone_assumed = t.ts, t.tz, t.status, t.zone_assumed
    if ts is None and published is not None:  # the feed's own date for the item
        ts, tz, status, zone_assumed = published, "UTC", "ok", False
        ts = ts.astimezone(UTC)
    linked = [m for m in sorted(art.mentions, key=lambda m: -m.relevance)
              if m.relevance >= MIN_RELEVANCE]
    event_status = "candidate" if status == "ok" and ts is not None else "needs_timestamp"
    now = datetime.now(UTC).replace(tzinfo=None)
    with transaction(con):
        con.execute("INSERT INTO articles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            article_id, feed or art.source, url, art.headline, art.publisher,
            ts, ts.isoformat() if ts else None, tz, zone_assumed,
            "ok" if ts is not None else "needs_timestamp", t.matched or None,
            art.body_hash, now])
        for m in art.mentions:
            con.execute("INSERT INTO article_mentions VALUES (?, ?, ?, ?, ?, ?)", [
                article_id, m.ticker, m.count, m.relevance, m.in_headline,
                ", ".join(m.aliases_found)])
        con.execute("INSERT INTO news_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)", [
            "news-" + article_id, article_id, ts, tz, art.headline,
            art.publisher or (feed or art.source), ", ".join(m.ticker for m in linked),
            event_status, None if ts is not None else t.reason or "no publication time found"])
    result.new.append(article_id)
    if event_status == "needs_timestamp":
        result.needs_timestamp.append(article_id)


def confirm(con: duckdb.DuckDBPyConnection, event_id: str, *, when: datetime | None = None,
            tz: str | None = None) -> str:
    """Confirm a candidate news event, optionally with a corrected time.

    Parameters
    ----------
    event_id
        ``news-...`` id (or the article id).
    when
        A corrected local time (naive), with ``tz``.
    tz
        IANA zone of ``when`` (default: the event's zone).

    Returns
    -------
    str
        The confirmed event id.

    Raises
    ------
    InputError
        Unknown event, no time to confirm, or a bad zone.
    """
    eid = event_id if event_id.startswith("news-") else "news-" + event_id
    row = fetch_one(con, "SELECT ts, tz, status FROM news_events WHERE event_id = ?", [eid])
    if row is None:
        raise InputError(f"there is no news event '{event_id}': see impact events list")
    ts, old_tz, _status = row
    note = None
    if when is not None:
        zone_name = tz or old_tz
        if zone_name is None:
            raise InputError("give the zone of the corrected time with --tz (e.g. Asia/Seoul)")
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise InputError(f"'{zone_name}' is not an IANA time zone") from None
        new_ts = when.replace(tzinfo=zone)
        note = f"time corrected from {ts.isoformat() if ts else 'none'}"
        ts, old_tz = new_ts, zone_name
    if ts is None:
        raise InputError(f"'{eid}' has no publication time: confirm it with --time "
                         f"'2025-01-30T18:22' --tz Asia/Seoul")
    with transaction(con):
        con.execute("UPDATE news_events SET ts = ?, tz = ?, status = 'confirmed', "
                    "confirmed_at = ?, note = coalesce(?, note) WHERE event_id = ?",
                    [ts, old_tz, datetime.now(UTC).replace(tzinfo=None), note, eid])
    return eid


def confirmed_events(con: duckdb.DuckDBPyConnection, tickers: Sequence[str]) -> list[Event]:
    """Confirmed news events that name any of the tickers, as catalog events."""
    rows = con.execute(
        "SELECT event_id, ts, tz, title, source, tickers FROM news_events "
        "WHERE status = 'confirmed' ORDER BY event_id").fetchall()
    out = []
    for event_id, ts, tz, title, source, linked in rows:
        names = {t.strip() for t in (linked or "").split(",") if t.strip()}
        if not names & set(tickers):
            continue
        zone = ZoneInfo(tz) if tz else UTC
        out.append(Event(event_id=event_id, ts=ts.astimezone(zone), tz=tz or "UTC",
                         date_only=False, title=title or event_id, source=source or "",
                         category="article", notes="ingested news, confirmed"))
    return out
