"""News ingestion: publication time, security linking, HTML pages, feeds, duplicates.

The three real articles are read from ../shared/articles at run time (never copied
into the project); the other pages are built here, each to make one rule fail if
it breaks.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from impact.errors import InputError
from impact.news import (
    DEFAULT_ALIASES,
    AliasTable,
    FeedItems,
    article_body,
    find_publication_time,
    link_securities,
    load_aliases,
    parse_article,
    parse_feed,
)

ROOT = Path(__file__).resolve().parent.parent
ARTICLES = ROOT.parent / "shared" / "articles"
SEOUL = ZoneInfo("Asia/Seoul")
NEW_YORK = ZoneInfo("America/New_York")


def _article(prefix: str) -> str:
    if not ARTICLES.is_dir():
        msg = f"{ARTICLES} is missing: these tests read the shared articles"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    (path,) = ARTICLES.glob(f"{prefix}_*.txt")
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def aliases() -> AliasTable:
    return load_aliases()


def _tickers(mentions: object) -> list[str]:
    return [m.ticker for m in mentions]  # type: ignore[attr-defined]


def _prose(*names: str) -> str:
    """Paragraphs of running text naming ``names`` (each line a full sentence)."""
    return "\n".join(
        f"{name}의 주가는 딥시크 충격 이후 크게 흔들렸고 시장에서는 인공지능 반도체 수요가 "
        f"줄어들 수 있다는 우려가 커지고 있다고 업계 관계자들은 설명했다."
        for name in names)


# ============================================================================ real articles


def test_001_blog_post_states_no_time(aliases: AliasTable) -> None:
    text = _article("001")
    for tz in (None, "Asia/Seoul"):
        t = find_publication_time(text, publisher_tz=tz)
        assert t.status == "needs_timestamp"
        assert t.ts is None and t.tz is None
        assert t.reason
    a = parse_article(text, source="001", aliases=aliases)
    assert a.time.status == "needs_timestamp"
    assert a.headline == "딥시크 쇼크 중국 GPU 우회확보에 대한 우려!"
    assert a.publisher is None
    assert _tickers(a.mentions) == ["NVDA", "000660.KS", "005930.KS"]
    by = {m.ticker: m for m in a.mentions}
    assert by["NVDA"].count > by["000660.KS"].count >= 3
    assert by["005930.KS"].count >= 3
    assert by["000660.KS"].aliases_found == ("SK하이닉스",)


def test_002_board_repost(aliases: AliasTable) -> None:
    text = _article("002")
    a = parse_article(text, source="002", publisher_tz="Asia/Seoul", aliases=aliases)
    t = a.time
    assert t.status == "ok"
    assert t.ts == datetime(2025, 1, 30, 18, 22, tzinfo=SEOUL)
    assert t.ts is not None and t.ts.utcoffset() == timedelta(hours=9)
    assert t.tz == "Asia/Seoul"
    assert t.zone_assumed is True
    assert "작성일 25-01-30 18:22" in t.matched
    # The board's suffix " > 경제기사 | economics" is not part of the headline.
    assert a.headline == '"값비싼 엔비디아 AI칩 필요한가?" vs "고성능 칩 수요 더 커질 것"'
    # Korean Economic Daily is only implied (a hankyung.com e-mail); the board's
    # "Copyright © 소유하신 도메인" is not a publisher.
    assert a.publisher is None
    assert a.mentions[0].ticker == "NVDA"
    assert a.mentions[0].in_headline
    assert a.mentions[0].count >= 10
    assert a.mentions[0].relevance == max(m.relevance for m in a.mentions)
    # The comment box, the site information and the visitor counter are not body.
    assert "댓글목록" not in a.body and "사업자 등록번호" not in a.body
    assert "946,098" not in a.body


def test_002_without_publisher_zone_needs_timestamp() -> None:
    t = find_publication_time(_article("002"))
    assert t.status == "needs_timestamp"
    assert t.ts is None
    assert "no default zone for the publisher" in t.reason
    assert "25-01-30 18:22" in t.matched


def test_002_other_dates_are_not_taken() -> None:
    # "지난 27일", "28일", "29일", "사업자 등록번호 : 123-45-67890", "02-123-4567":
    # with the marker line removed nothing else may pass for a publication time.
    text = _article("002").replace("작성일 25-01-30 18:22", "")
    t = find_publication_time(text, publisher_tz="Asia/Seoul")
    assert t.status == "needs_timestamp"
    assert t.ts is None


def test_002_others_named_in_passing_rank_below_nvidia(tmp_path: Path) -> None:
    # Meta and Microsoft are named in passing in 002 (not in the shipped table);
    # a user who adds them gets them linked, with a lower relevance than Nvidia.
    path = tmp_path / "aliases.csv"
    path.write_text(DEFAULT_ALIASES.read_text(encoding="utf-8")
                    + "META,메타,name_ko\nMETA,메타버스,exclude\nMSFT,마이크로소프트,name_ko\n"
                    "MSFT,MS,ticker\n", encoding="utf-8")
    a = parse_article(_article("002"), source="002", publisher_tz="Asia/Seoul",
                      aliases=load_aliases(path))
    by = {m.ticker: m for m in a.mentions}
    assert a.mentions[0].ticker == "NVDA"
    assert {"META", "MSFT"} <= set(by)
    assert by["META"].relevance < by["NVDA"].relevance / 2
    # "마이크로소프트MS" (a name with its ticker) is one mention.
    assert by["MSFT"].count == 1
    assert by["MSFT"].aliases_found == ("마이크로소프트", "MS")


def test_004_thebell(aliases: AliasTable) -> None:
    text = _article("004")
    a = parse_article(text, source="004", publisher_tz="Asia/Seoul", aliases=aliases)
    t = a.time
    assert t.status == "ok"
    assert t.ts == datetime(2025, 2, 3, 7, 15, tzinfo=SEOUL)
    assert t.tz == "Asia/Seoul" and t.zone_assumed is True
    assert t.matched.startswith("2025년 02월 03일 07시15분")
    assert a.publisher == "thebell"
    # The first line is the publication notice and the second a paragraph: no headline.
    assert a.headline == ""
    assert _tickers(a.mentions) == ["NVDA", "000660.KS"]
    assert "005930.KS" not in _tickers(a.mentions)
    assert a.mentions[0].relevance > a.mentions[1].relevance > 0
    # The lists of other headlines after the copyright line are not body.
    assert "i-point" not in a.body and "저작권자" not in a.body
    assert a.body.startswith("중국의 인공지능(AI) 스타트업")


def test_004_side_list_securities_are_not_linked(tmp_path: Path) -> None:
    # Hancom, JB Financial and Suprema are named only in the lists of other headlines.
    path = tmp_path / "aliases.csv"
    path.write_text("ticker,alias,kind\nNVDA,엔비디아,name_ko\n030520.KQ,한컴,name_ko\n"
                    "175330.KS,JB금융,name_ko\n236200.KQ,슈프리마,name_ko\n", encoding="utf-8")
    table = load_aliases(path)
    text = _article("004")
    assert "한컴" in text and "슈프리마" in text
    assert _tickers(link_securities(text, table)) == ["NVDA"]
    # ... while matching on the whole page would have linked them:
    assert len({m.ticker for m in link_securities(_prose("한컴"), table)}) == 1


# ============================================================================ time formats


@pytest.mark.parametrize(("text", "expected"), [
    ("이 기사는 2025년 02월 03일 07시15분 thebell에 표출된 기사입니다",
     datetime(2025, 2, 3, 7, 15, tzinfo=SEOUL)),
    ("댓글 0건 조회 29회 작성일 25-01-30 18:22", datetime(2025, 1, 30, 18, 22, tzinfo=SEOUL)),
    ("입력 2025.02.06 14:03", datetime(2025, 2, 6, 14, 3, tzinfo=SEOUL)),
    ("기사입력 2025.01.30 오후 6:22", datetime(2025, 1, 30, 18, 22, tzinfo=SEOUL)),
    ("등록 2025-01-30 18:22:05", datetime(2025, 1, 30, 18, 22, 5, tzinfo=SEOUL)),
    ("2025.02.06 14:03", datetime(2025, 2, 6, 14, 3, tzinfo=SEOUL)),  # a lone byline
])
def test_korean_formats_take_the_publisher_zone(text: str, expected: datetime) -> None:
    t = find_publication_time(text, publisher_tz="Asia/Seoul")
    assert (t.status, t.ts, t.tz, t.zone_assumed) == ("ok", expected, "Asia/Seoul", True)


@pytest.mark.parametrize(("text", "expected", "tz"), [
    ("Jan 30, 2025 6:22 PM KST", datetime(2025, 1, 30, 18, 22, tzinfo=SEOUL), "Asia/Seoul"),
    ("2025-01-30T18:22:00+09:00", datetime(2025, 1, 30, 9, 22, tzinfo=UTC), "Etc/GMT-9"),
    ("2025-01-30T09:22:00Z", datetime(2025, 1, 30, 9, 22, tzinfo=UTC), "UTC"),
    ("Thu, 30 Jan 2025 10:22:00 +0100", datetime(2025, 1, 30, 9, 22, tzinfo=UTC),
     "Etc/GMT-1"),
    ("Published Jan 27, 2025 9:30 AM EST", datetime(2025, 1, 27, 14, 30, tzinfo=UTC),
     "America/New_York"),
    ("Posted July 4, 2025 at 10:00 a.m. ET", datetime(2025, 7, 4, 14, 0, tzinfo=UTC),
     "America/New_York"),
    ("입력 2025.01.30 18:22 (한국시간)", datetime(2025, 1, 30, 9, 22, tzinfo=UTC),
     "Asia/Seoul"),
])
def test_a_written_zone_wins_over_the_publisher_zone(text: str, expected: datetime,
                                                     tz: str) -> None:
    # The publisher's default (New York) must not override what the page writes.
    default = "America/New_York" if tz != "America/New_York" else "Asia/Seoul"
    t = find_publication_time(text, publisher_tz=default)
    assert t.status == "ok", t.reason
    assert t.ts == expected
    assert t.zone_assumed is False
    assert t.tz == tz
    assert t.ts is not None and t.ts.tzinfo == ZoneInfo(tz)


def test_offset_matching_the_publisher_zone_is_named_after_it() -> None:
    t = find_publication_time("2025-01-30T18:22:00+09:00", publisher_tz="Asia/Seoul")
    assert t.tz == "Asia/Seoul" and not t.zone_assumed
    t = find_publication_time("2025-01-30T18:22:00+09:00")
    assert t.tz == "Etc/GMT-9" and t.ts == datetime(2025, 1, 30, 9, 22, tzinfo=UTC)


def test_time_without_zone_and_no_publisher_zone() -> None:
    t = find_publication_time("입력 2025.02.06 14:03")
    assert t.status == "needs_timestamp"
    assert t.ts is None
    assert t.reason.startswith("a time without a zone and no default zone for the publisher")


def test_date_without_time_of_day_is_not_a_timestamp() -> None:
    t = find_publication_time("입력 2025.02.06", publisher_tz="Asia/Seoul")
    assert t.status == "needs_timestamp" and "only a date" in t.reason


@pytest.mark.parametrize("text", ["12/01/25 18:22", "30/01/2025 18:22", "지난 27일 오후 3시",
                                  "16.97% 급락, 4.10 하락", "사업자 등록번호 : 123-45-67890"])
def test_ambiguous_or_partial_dates_are_not_read(text: str) -> None:
    t = find_publication_time(text, publisher_tz="Asia/Seoul")
    assert t.status == "needs_timestamp" and t.ts is None


def test_side_list_of_dated_headlines_loses_to_the_articles_own_time() -> None:
    page = "\n".join([
        "엔비디아 쇼크, 국내 반도체도 흔들",
        "많이 본 뉴스",
        "- SK하이닉스, HBM 공급 확대 2025.01.29 09:10",
        "- 한미반도체 신고가 행진 2025.01.28 15:30",
        "입력 2025.02.06 14:03 | 수정 2025.02.06 15:40",
        _prose("엔비디아", "엔비디아"),
        "관련기사",
        "- 삼성전자, 4분기 실적 발표 2025.01.31 08:00",
        "- 마이크론 실적 전망 2025.01.30 07:00",
    ])
    t = find_publication_time(page, publisher_tz="Asia/Seoul")
    assert t.ts == datetime(2025, 2, 6, 14, 3, tzinfo=SEOUL)
    assert t.matched == "입력 2025.02.06 14:03"
    # Without the marker line no date may be taken: they all belong to other posts.
    lines = [ln for ln in page.splitlines() if not ln.startswith("입력")]
    t = find_publication_time("\n".join(lines), publisher_tz="Asia/Seoul")
    assert t.status == "needs_timestamp" and t.ts is None


def test_bulleted_link_with_its_own_marker_is_not_taken(aliases: AliasTable) -> None:
    page = "\n".join([
        "엔비디아 쇼크",
        "▶ [단독] 삼성전자 HBM 공급 확대 | 입력 2025.01.28 10:00",
        "입력 2025.02.06 14:03",
        _prose("엔비디아"),
        "- 한미반도체 신고가 행진",
        _prose("엔비디아"),
    ])
    t = find_publication_time(page, publisher_tz="Asia/Seoul")
    assert t.ts == datetime(2025, 2, 6, 14, 3, tzinfo=SEOUL)
    # Two links between paragraphs (not a run of three lines) are still not body.
    assert _tickers(link_securities(page, aliases)) == ["NVDA"]


def test_unbulleted_list_of_dated_headlines_is_not_a_byline() -> None:
    page = "\n".join([
        "엔비디아 급락에 반도체주 약세 2025.01.28 10:00",
        "삼성전자 실적 발표 앞두고 관망세 2025.01.29 11:00",
        _prose("엔비디아"),
    ])
    t = find_publication_time(page, publisher_tz="Asia/Seoul")
    assert t.status == "needs_timestamp"


def test_comment_box_dates_are_not_taken() -> None:
    page = "\n".join([
        "엔비디아 급락 분석",
        _prose("엔비디아"),
        "댓글목록",
        "작성자 투자자1 작성일 25-01-31 09:10",
        "엔비디아 지금이 매수 기회라고 생각합니다. 다들 어떻게 보시나요?",
    ])
    t = find_publication_time(page, publisher_tz="Asia/Seoul")
    assert t.status == "needs_timestamp"


def test_dates_inside_the_article_text_are_not_publication_times() -> None:
    page = ("엔비디아 주가\n" + _prose("엔비디아")
            + "\n2025.01.27 09:30 뉴욕증시 개장 직후 급락했다.")
    assert find_publication_time(page, publisher_tz="Asia/Seoul").status == "needs_timestamp"


def test_relative_times_need_a_reference_time() -> None:
    ref = datetime(2025, 1, 30, 21, 0, tzinfo=SEOUL)
    for text, ago in [("3시간전", timedelta(hours=3)), ("3 hours ago", timedelta(hours=3)),
                      ("30분 전", timedelta(minutes=30)), ("입력 2일 전", timedelta(days=2))]:
        t = find_publication_time(text, reference_time=ref)
        assert t.status == "ok", text
        assert t.ts == ref - ago
        assert t.tz == "Asia/Seoul" and not t.zone_assumed
        t = find_publication_time(text, publisher_tz="Asia/Seoul")
        assert t.status == "needs_timestamp" and t.ts is None
        assert "reference_time" in t.reason


def test_relative_time_in_the_article_text_is_ignored() -> None:
    ref = datetime(2025, 1, 30, 21, 0, tzinfo=SEOUL)
    page = ("엔비디아\n딥시크가 3일 전 공개한 모델이 시장을 흔들었고 "
            "엔비디아의 주가는 크게 떨어졌다고 전했다.")
    assert find_publication_time(page, reference_time=ref).status == "needs_timestamp"


def test_naive_reference_time_and_bad_zone_are_input_errors() -> None:
    with pytest.raises(InputError, match="aware"):
        find_publication_time("3시간전", reference_time=datetime(2025, 1, 30, 21, 0))
    with pytest.raises(InputError, match="IANA"):
        find_publication_time("입력 2025.02.06 14:03", publisher_tz="Seoul")


def test_english_published_wins_over_updated() -> None:
    page = "\n".join([
        "Nvidia sheds $589 billion as DeepSeek rattles the AI trade",
        "By Jane Doe",
        "Last updated Jan 28, 2025 9:00 AM EST",
        "Published Jan 27, 2025 6:22 PM EST",
        "Nvidia shares fell 17% on Monday, the largest one-day loss of market value for any "
        "company in history, after DeepSeek released a cheap and capable model.",
        "Advanced Micro Devices and Broadcom also fell; AMD lost 6.4% while Amdocs was flat.",
        "Related",
        "- Micron earnings preview Jan 29, 2025 4:00 PM EST",
    ])
    t = find_publication_time(page)
    assert t.status == "ok"
    assert t.ts == datetime(2025, 1, 27, 18, 22, tzinfo=NEW_YORK)
    assert t.tz == "America/New_York" and not t.zone_assumed
    assert t.matched.startswith("Published")
    # Only an update time: taken, and said so.
    t = find_publication_time(page.replace("Published Jan 27, 2025 6:22 PM EST\n", ""))
    assert t.ts == datetime(2025, 1, 28, 9, 0, tzinfo=NEW_YORK)
    assert "update" in t.reason


def test_english_page_securities() -> None:
    page = "\n".join([
        "Nvidia sheds $589 billion as DeepSeek rattles the AI trade",
        "Published Jan 27, 2025 6:22 PM EST",
        "Nvidia shares fell 17% on Monday, the largest one-day loss of market value for any "
        "company in history, after DeepSeek released a cheap and capable model.",
        "Advanced Micro Devices and Broadcom also fell; AMD lost 6.4% while Amdocs and amd64 "
        "builds were unaffected.",
        "Related",
        "- Micron earnings preview",
        "- TSMC outlook",
    ])
    a = parse_article(page, source="en", aliases=load_aliases())
    by = {m.ticker: m for m in a.mentions}
    assert a.headline.startswith("Nvidia sheds")
    assert a.mentions[0].ticker == "NVDA" and by["NVDA"].in_headline
    assert by["AMD"].count == 2  # "Advanced Micro Devices", "AMD"; not Amdocs, not amd64
    assert "AVGO" in by
    assert "MU" not in by and "TSM" not in by  # only in the related list


# ============================================================================ aliases


def test_shipped_alias_table(aliases: AliasTable) -> None:
    for ticker, names in {
        "NVDA": {"엔비디아", "Nvidia", "NVIDIA", "NVDA"},
        "000660.KS": {"SK하이닉스", "SK 하이닉스", "하이닉스", "SK hynix", "SK Hynix", "000660"},
        "005930.KS": {"삼성전자", "삼성 전자", "Samsung Electronics", "005930"},
        "042700.KS": {"한미반도체", "042700"},
    }.items():
        assert names <= set(aliases.names(ticker)), ticker
    assert {"TSM", "AVGO", "MU", "AMD", "ASML"} <= set(aliases.tickers)
    # "삼성" alone is the group, not Samsung Electronics.
    assert all(a.alias != "삼성" for a in aliases.aliases)


def test_hynix_inside_sk_hynix_counts_once(aliases: AliasTable) -> None:
    text = ("SK하이닉스 주가가 급락했다. SK 하이닉스는 HBM을 공급한다. 하이닉스 시절부터 "
            "메모리에 집중했다. SK hynix shares fell. SK하이닉스(000660)도 하락했다.")
    (m,) = link_securities(text, aliases)
    assert m.ticker == "000660.KS"
    assert m.count == 5
    assert m.aliases_found == ("SK하이닉스", "SK 하이닉스", "하이닉스", "SK hynix", "000660")


def test_longest_alias_wins_for_preferred_shares(aliases: AliasTable) -> None:
    text = "삼성전자우는 보합, 삼성전자는 하락했다고 증권가는 오늘 전했다."
    mentions = link_securities(text, aliases)
    assert {m.ticker: m.count for m in mentions} == {"005935.KS": 1, "005930.KS": 1}


def test_samsung_group_alone_is_not_samsung_electronics(aliases: AliasTable) -> None:
    text = "삼성 그룹 계열사들이 일제히 하락했다고 증권가는 오늘 전했다."
    assert link_securities(text, aliases) == []


def test_amd_needs_word_boundaries(aliases: AliasTable) -> None:
    assert link_securities("Amdocs and AMDX rose; LAMD fell; amd is not a ticker.", aliases) == []
    (m,) = link_securities("AMD의 주가와 (AMD) 그리고 $AMD.", aliases)
    assert m.ticker == "AMD" and m.count == 3


def test_english_names_are_case_insensitive_tickers_exact(aliases: AliasTable) -> None:
    (m,) = link_securities("nvidia and NVIDIA and Nvidia's rally", aliases)
    assert m.ticker == "NVDA" and m.count == 3
    assert link_securities("nvda nvdA", aliases) == []


def test_exclude_rows_hide_shorter_aliases() -> None:
    table = AliasTable.from_rows([("META", "메타", "name_ko"), ("META", "메타버스", "exclude"),
                                  ("META", "메타데이터", "exclude")])
    assert link_securities("메타버스와 메타데이터 이야기다.", table) == []
    (m,) = link_securities("메타는 투자를 줄이지 않는다. 메타버스는 별개다.", table)
    assert m.count == 1


def test_relevance(aliases: AliasTable) -> None:
    text = _prose("엔비디아", "엔비디아", "엔비디아", "삼성전자")
    mentions = link_securities(text, aliases, headline="삼성전자 실적 발표")
    by = {m.ticker: m for m in mentions}
    assert by["005930.KS"].in_headline and not by["NVDA"].in_headline
    # 0.4 * headline + 0.4 * share + 0.2 * earliness
    assert by["NVDA"].relevance == pytest.approx(0.4 * 3 / 5 + 0.2, abs=1e-3)
    earliness = 1 - text.index("삼성전자") / len(text)
    assert by["005930.KS"].relevance == pytest.approx(0.4 + 0.4 * 2 / 5 + 0.2 * earliness,
                                                      abs=1e-3)
    assert all(0 <= m.relevance <= 1 for m in mentions)


@pytest.mark.parametrize(("csv_text", "message"), [
    ("ticker,name\nNVDA,Nvidia\n", "missing column"),
    ("ticker,alias,kind\nNVDA,Nvidia,nickname\n", "unknown kind"),
    ("ticker,alias,kind\nNVDA,Nvidia,name_en\nAMD,NVIDIA,name_en\n", "one security"),
    ("ticker,alias,kind\nNVDA,,name_en\n", "must not be empty"),
    ("# only a comment\n", "empty"),
])
def test_bad_alias_files(tmp_path: Path, csv_text: str, message: str) -> None:
    path = tmp_path / "aliases.csv"
    path.write_text(csv_text, encoding="utf-8")
    with pytest.raises(InputError, match=message) as info:
        load_aliases(path)
    assert str(path) in str(info.value)


def test_missing_alias_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="ticker,alias,kind"):
        load_aliases(tmp_path / "nope.csv")


# ============================================================================ body


def test_article_body_drops_navigation_lists_comments_and_copyright() -> None:
    page = "\n".join([
        "본문 바로가기", "로그인", "회원가입",
        "엔비디아 급락",
        _prose("엔비디아"),
        "- 딥시크의 AI 모델 훈련 비용은 기존의 10분의 1로 낮췄다고 회사 측은 밝혔습니다.",
        "ⓒ 뉴스1",
        _prose("엔비디아"),
        "관련기사",
        "- 삼성전자 신고가",
        "- 한미반도체 실적",
        "Copyright © Example. All rights reserved.",
        "댓글목록",
        "삼성전자가 더 좋아 보입니다. 여러분 생각은 어떠신가요?",
    ])
    body = article_body(page)
    assert body.startswith("엔비디아의 주가는")
    assert "- 딥시크의 AI 모델" in body  # a bulleted sentence is body
    assert body.count("엔비디아의 주가는") == 2  # a photo credit does not end the article
    for gone in ("본문 바로가기", "삼성전자", "Copyright", "댓글", "뉴스1"):
        assert gone not in body


def test_snippet_without_running_text_is_kept() -> None:
    assert article_body("Nvidia falls 17%") == "Nvidia falls 17%"


# ============================================================================ HTML

HTML_PAGE = """<!doctype html>
<html><head>
<title>엔비디아 급락, 반도체 흔들 | 경제 | 한경</title>
<meta property="article:published_time" content="2025-01-30T18:22:00+09:00">
<meta property="og:site_name" content="한국경제">
<script>var fake = "입력 2020.01.01 00:00"; var p = "Published Jan 1, 2020 1:00 PM KST";
document.write("<p>삼성전자</p>");</script>
<style>.byline::before { content: "2019-05-05 10:00"; }</style>
</head><body>
<nav><a href="/">홈</a> <a href="/s">삼성전자 특집</a></nav>
<header><h1>엔비디아 급락, 반도체 &amp; AI 흔들</h1>
<p class="byline">황정수 기자 <time datetime="2025-01-30T18:30:00+09:00">2025.01.30 18:30</time></p>
</header>
<article>
<p>엔비디아 주가는 딥시크가 글로벌 이슈로 떠오른 이후 첫 거래일인 지난 27일 미국 뉴욕증시에서
16.97% 급락했다. SK하이닉스도 설 연휴 이후 첫 거래일에 9% 넘게 떨어졌다.</p>
<p>엔비디아는 27일 공식 입장을 통해 딥시크의 부상이 더 많은 AI 가속기 수요를 창출할 것이라고
밝혔다.</p>
</article>
<aside><h2>많이 본 뉴스</h2><ul>
<li><a>한미반도체 신고가</a> <time datetime="2025-01-29T09:00:00+09:00">1월 29일</time></li>
</ul></aside>
<footer>Copyright © 한국경제. All rights reserved.</footer>
</body></html>"""


def test_html_meta_published_time_and_script_dates(aliases: AliasTable) -> None:
    a = parse_article(HTML_PAGE, source="https://example.com/a", html=True,
                      publisher_tz="Asia/Seoul", aliases=aliases)
    assert a.time.ts == datetime(2025, 1, 30, 18, 22, tzinfo=SEOUL)
    assert a.time.tz == "Asia/Seoul" and not a.time.zone_assumed
    assert "article:published_time" in a.time.matched
    assert a.headline == "엔비디아 급락, 반도체 & AI 흔들"
    assert a.publisher == "한국경제"
    assert _tickers(a.mentions) == ["NVDA", "000660.KS"]  # not 삼성전자 (nav, script) nor 한미
    assert "var fake" not in a.body and "content:" not in a.body
    assert a.source == "https://example.com/a"


def test_html_time_element_when_no_meta(aliases: AliasTable) -> None:
    page = HTML_PAGE.replace('<meta property="article:published_time" '
                             'content="2025-01-30T18:22:00+09:00">', "")
    t = parse_article(page, source="x", html=True, aliases=aliases).time
    assert t.ts == datetime(2025, 1, 30, 18, 30, tzinfo=SEOUL)
    assert t.matched.startswith("<time")
    # No structured date at all: the script's dates are never read.
    page = page.replace('<time datetime="2025-01-30T18:30:00+09:00">2025.01.30 18:30</time>', "")
    t = parse_article(page, source="x", html=True, aliases=aliases).time
    assert t.status == "needs_timestamp"


def test_html_json_ld_and_title_fallback(aliases: AliasTable) -> None:
    page = """<html><head><title>Nvidia plunges - Example News</title>
<script type="application/ld+json">{"@type": "NewsArticle", "datePublished":
"2025-01-27T18:22:00-05:00", "publisher": {"@type": "Organization", "name": "Example News"}}
</script></head><body><p>Nvidia shares fell 17% on Monday, the largest one-day loss of market
value for any company in history.</p></body></html>"""
    a = parse_article(page, source="x", html=True, aliases=aliases)
    assert a.headline == "Nvidia plunges"
    assert a.publisher == "Example News"
    assert a.time.ts == datetime(2025, 1, 27, 18, 22, tzinfo=NEW_YORK)


def test_empty_article_is_an_input_error() -> None:
    with pytest.raises(InputError, match="empty"):
        parse_article("  \n ", source="x")


# ============================================================================ duplicates


def test_same_text_with_other_whitespace_has_the_same_hash(aliases: AliasTable) -> None:
    text = _article("004")
    messy = "\r\n\r\n".join("  " + ln.replace(" ", "  \t") + "   " for ln in text.splitlines())
    a = parse_article(text, source="a", aliases=aliases)
    b = parse_article(messy, source="b", aliases=aliases)
    assert a.body_hash == b.body_hash
    assert len(a.body_hash) == 64
    c = parse_article(text.replace("9%대", "8%대"), source="c", aliases=aliases)
    assert c.body_hash != a.body_hash
    # The same article with another side list is still the same article.
    d = parse_article(text + "\n- [i-point]다른 기사 제목", source="d", aliases=aliases)
    assert d.body_hash == a.body_hash


# ============================================================================ feeds

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Example</title><link>https://example.com/</link>
<item><title>엔비디아 16.97% 급락</title><link>https://example.com/1</link>
<guid>https://example.com/1</guid>
<description>&lt;p&gt;딥시크 &lt;b&gt;쇼크&lt;/b&gt;&lt;script&gt;steal()&lt;/script&gt;&lt;/p&gt;
</description>
<pubDate>Mon, 27 Jan 2025 16:00:00 -0500</pubDate></item>
<item><title>&lt;script&gt;alert(1)&lt;/script&gt; &amp; more</title>
<link>https://example.com/2</link><pubDate>Thu, 30 Jan 2025 18:22:00 KST</pubDate></item>
<item><title>No date</title><link>https://example.com/3</link></item>
</channel></rss>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Example</title><id>urn:x</id>
<updated>2025-01-28T00:00:00Z</updated>
<entry><title>SK하이닉스 9% 하락</title><link href="https://example.com/a"/><id>urn:a</id>
<published>2025-01-31T09:10:00+09:00</published><updated>2025-01-31T10:00:00+09:00</updated>
<summary type="html">&lt;p&gt;설 연휴 이후 &lt;i&gt;첫&lt;/i&gt; 거래일&lt;/p&gt;</summary></entry>
<entry><title>Only updated</title><id>urn:b</id><updated>2025-01-28T00:00:00Z</updated></entry>
</feed>"""


def test_rss_feed() -> None:
    items = parse_feed(RSS.encode("utf-8"))
    assert isinstance(items, FeedItems) and len(items) == 3
    first, second, third = items
    assert first.title == "엔비디아 16.97% 급락"
    assert first.link == "https://example.com/1"
    assert first.id == "https://example.com/1"
    assert first.published == datetime(2025, 1, 27, 21, 0, tzinfo=UTC)
    assert first.summary == "딥시크 쇼크"  # tags stripped, the script's content dropped
    assert first.updated is None  # not feedparser's fallback to the published date
    # feedparser alone reads "KST" as UTC; the written zone is kept.
    assert second.published == datetime(2025, 1, 30, 9, 22, tzinfo=UTC)
    assert third.published is None
    assert items.warnings == ()


def test_malicious_title_is_kept_as_text() -> None:
    items = parse_feed(RSS)  # str input too
    assert items[1].title == "<script>alert(1)</script> & more"


def test_atom_feed() -> None:
    items = parse_feed(ATOM)
    assert [i.title for i in items] == ["SK하이닉스 9% 하락", "Only updated"]
    a, b = items
    assert a.published == datetime(2025, 1, 31, 0, 10, tzinfo=UTC)
    assert a.updated == datetime(2025, 1, 31, 1, 0, tzinfo=UTC)
    assert a.link == "https://example.com/a"
    assert a.summary == "설 연휴 이후 첫 거래일"
    assert b.published is None and b.updated == datetime(2025, 1, 28, tzinfo=UTC)


def test_feed_date_without_zone_is_left_empty_with_a_warning() -> None:
    feed = RSS.replace("Mon, 27 Jan 2025 16:00:00 -0500", "2025-01-27 16:00")
    items = parse_feed(feed)
    assert items[0].published is None
    assert any("no time zone" in w for w in items.warnings)


@pytest.mark.parametrize("content", [b"", b"garbage, not xml at all", "<html><body><p>hi</p>"
                                     "</body></html>", b"<rss><channel><title>x"])
def test_broken_feed_is_an_input_error(content: bytes | str) -> None:
    with pytest.raises(InputError, match="feed"):
        parse_feed(content)


def test_malformed_feed_with_entries_keeps_them_with_a_warning() -> None:
    broken = (b"<rss version='2.0'><channel><item><title>one</title></item>"
              b"<item><title>two & three</title></item></channel></rss>")
    items = parse_feed(broken)
    assert [i.title for i in items] == ["one", "two & three"]
    assert len(items.warnings) == 1 and "not well-formed" in items.warnings[0]


def test_feed_text_that_looks_like_a_url_is_not_fetched() -> None:
    with pytest.raises(InputError):
        parse_feed("https://example.com/feed.xml")
