"""impact events ingest: the real articles, feeds built here, duplicates, URLs."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from impact.cli import main
from tests.conftest import SHARED

ARTICLES = SHARED / "articles"


@pytest.fixture
def articles() -> Path:
    if not ARTICLES.is_dir():
        pytest.skip("../shared/articles is missing")
    return ARTICLES


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def ingest(db: Path, target: str, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["events", "ingest", target, "--db", str(db), *args])


def test_the_three_real_articles(tmp_path: Path, articles: Path) -> None:
    db = tmp_path / "n.duckdb"
    res = ingest(db, str(next(articles.glob("001_*.txt"))))
    assert res.exit_code == 0, res.output
    assert "needs_timestamp" in res.stdout and "no publication time" in res.stderr
    for name in ("002_*.txt", "004_*.txt"):
        res = ingest(db, str(next(articles.glob(name))), "--tz", "Asia/Seoul")
        assert res.exit_code == 0, res.output
    got = {src.split("/")[-1][:3]: (status, local, tz, assumed) for src, status, local, tz, assumed
           in rows(db, "SELECT source, time_status, published_local, tz, zone_assumed "
                       "FROM articles")}
    assert got["001"] == ("needs_timestamp", None, None, False)
    assert got["002"] == ("ok", "2025-01-30T18:22:00+09:00", "Asia/Seoul", True)
    assert got["004"] == ("ok", "2025-02-03T07:15:00+09:00", "Asia/Seoul", True)
    linked = {src.split("/")[-1][:3]: tickers for src, tickers in rows(
        db, "SELECT a.source, e.tickers FROM news_events e JOIN articles a USING (article_id)")}
    assert set(linked["001"].split(", ")) == {"NVDA", "000660.KS", "005930.KS"}
    assert linked["002"].split(", ")[0] == "NVDA"
    assert set(linked["004"].split(", ")) == {"NVDA", "000660.KS"}
    status = dict(rows(db, "SELECT a.source LIKE '%001_%', e.status FROM news_events e "
                           "JOIN articles a USING (article_id)"))
    assert status[True] == "needs_timestamp"
    # ingesting the same file again merges it
    res = ingest(db, str(next(articles.glob("002_*.txt"))), "--tz", "Asia/Seoul")
    assert "already stored" in res.stdout
    assert rows(db, "SELECT count(*) FROM articles") == [(3,)]


RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Test wire</title>
<item><title>SK하이닉스, HBM 우려에 급락</title><link>https://example.test/a1</link>
<pubDate>Fri, 31 Jan 2025 16:05:00 +0900</pubDate>
<description>SK하이닉스 주가가 9% 넘게 떨어졌다. 엔비디아 충격.</description></item>
<item><title>&lt;script&gt;alert(1)&lt;/script&gt; Nvidia falls</title>
<link>https://example.test/a2</link><pubDate>Mon, 27 Jan 2025 16:30:00 -0500</pubDate>
<description>Nvidia shares fell 17%.</description></item>
</channel></rss>
"""


def test_a_feed_with_a_malicious_title(tmp_path: Path) -> None:
    feed = tmp_path / "wire.rss"
    feed.write_text(RSS, encoding="utf-8")
    db = tmp_path / "n.duckdb"
    res = ingest(db, str(feed))
    assert res.exit_code == 0, res.output
    got = dict(rows(db, "SELECT url, headline FROM articles"))
    assert got["https://example.test/a2"] == "<script>alert(1)</script> Nvidia falls"  # text
    ts = dict(rows(db, "SELECT url, published_at FROM articles"))
    assert ts["https://example.test/a1"] == datetime.fromisoformat("2025-01-31T16:05:00+09:00")
    tick = dict(rows(db, "SELECT a.url, e.tickers FROM news_events e JOIN articles a "
                         "USING (article_id)"))
    assert tick["https://example.test/a1"].startswith("000660.KS")
    assert tick["https://example.test/a2"] == "NVDA"
    again = ingest(db, str(feed))
    assert again.stdout.count("already stored") == 2
    assert rows(db, "SELECT count(*) FROM news_events") == [(2,)]


def test_a_broken_feed_is_a_clean_error(tmp_path: Path) -> None:
    feed = tmp_path / "broken.xml"
    feed.write_text("<rss><channel><item><title>unterminated", encoding="utf-8")
    db = tmp_path / "n.duckdb"
    res = ingest(db, str(feed))
    assert res.exit_code == 3
    assert res.stderr.startswith("error: ") and "Traceback" not in res.output
    assert rows(db, "SELECT count(*) FROM articles") == [(0,)]


def test_missing_file_and_bad_zone(tmp_path: Path) -> None:
    db = tmp_path / "n.duckdb"
    res = ingest(db, str(tmp_path / "nope.txt"))
    assert res.exit_code == 3 and "no such file" in res.stderr
    page = tmp_path / "p.txt"
    page.write_text("Headline\n작성일 25-01-30 18:22\nNvidia fell.\n", encoding="utf-8")
    res = ingest(db, str(page), "--tz", "Asia/Seol")
    assert res.exit_code == 3 and "not an IANA time zone" in res.stderr


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """An HTTP server on loopback serving tmp_path."""
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *a, directory=str(tmp_path), **k)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()


def test_ingest_an_html_page_by_url(tmp_path: Path, server: str) -> None:
    (tmp_path / "page.html").write_text(
        "<html><head><title>Samsung slips</title>"
        '<meta property="article:published_time" content="2025-01-31T15:45:00+09:00">'
        "<script>var d = '2024-01-01 00:00';</script></head><body><h1>Samsung slips</h1>"
        "<p>Samsung Electronics fell 2.4% on Friday as SK hynix dropped.</p></body></html>",
        encoding="utf-8")
    db = tmp_path / "n.duckdb"
    res = ingest(db, f"{server}/page.html")
    assert res.exit_code == 0, res.output
    (url, local, head), = rows(db, "SELECT url, published_local, headline FROM articles")
    assert url == f"{server}/page.html" and local == "2025-01-31T15:45:00+09:00"
    assert head == "Samsung slips"
    res = ingest(db, f"{server}/page.html")
    assert "already stored" in res.stdout
    res = ingest(db, f"{server}/missing.html")
    assert res.exit_code == 5 and "could not fetch" in res.stderr
