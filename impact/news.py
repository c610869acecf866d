"""News articles and feeds: publication time, linked securities, duplicates.

Pure functions (no database, no network): the caller fetches pages and feeds and
stores the results. The rules are described in ``docs/news.md``.

Why this module is careful
--------------------------
A scraped page holds many dates and many company names that are not about the
article: a list of other headlines with their own times, a comment box, a
copyright line. An event study that takes the wrong date moves day 0, and one that
links a company named in a side list studies the wrong security. So:

- **Time.** :func:`find_publication_time` takes the time the page states for this
  article: one introduced by a publication marker (``작성일``, ``입력``, ``기사입력``,
  ``... 표출된 기사``, ``Published``, ``Posted``; an update marker only when no
  publication time is given), or a lone date-time in the byline block above the
  article. Dates in lists of other headlines, in related-article blocks and after
  the comment box or copyright line are never taken. When the page states no time
  (or only dates that could belong to anything), the answer is
  ``status="needs_timestamp"`` with the reason, never a guess.
- **Zone.** A zone written next to the time (``KST``, ``+09:00``, ``UTC``, ``EST``)
  wins; otherwise the publisher's default zone is used and ``zone_assumed`` says
  so; otherwise the time is not usable (``needs_timestamp``). The language of the
  page is not a zone: a Korean page can be written in a New York bureau.
- **Securities.** :func:`link_securities` matches the aliases of
  ``events/aliases.csv`` on the article body (:func:`article_body`) and the
  headline only, longest alias first, so that ``하이닉스`` inside ``SK하이닉스`` is
  one mention, not two.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import cached_property
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from impact.errors import InputError

__all__ = [
    "ALIAS_KINDS",
    "DEFAULT_ALIASES",
    "Alias",
    "AliasTable",
    "Article",
    "FeedItem",
    "FeedItems",
    "Mention",
    "PublicationTime",
    "article_body",
    "find_publication_time",
    "link_securities",
    "load_aliases",
    "normalize_text",
    "parse_article",
    "parse_feed",
]

#: The alias table shipped with the project (users extend it).
DEFAULT_ALIASES = Path(__file__).resolve().parent.parent / "events" / "aliases.csv"

#: Kinds of alias in the alias table, and how each is matched.
ALIAS_KINDS: dict[str, str] = {
    "name_ko": "Korean name: matched as a substring (Korean has no word boundaries)",
    "name_en": "English name: whole words, case-insensitive",
    "short": "short name (e.g. 하이닉스): matched like a name",
    "ticker": "exchange ticker (e.g. NVDA): whole word, exact case",
    "code": "numeric exchange code (e.g. 000660): whole number",
    "exclude": "text that is not a mention (e.g. 메타버스 for an alias 메타): it hides "
    "the shorter aliases inside it and links nothing",
}

STATUS_OK = "ok"
STATUS_NEEDS_TIMESTAMP = "needs_timestamp"

# ============================================================================ results


@dataclass(frozen=True)
class PublicationTime:
    """When an article was published, as stated on the page."""

    #: The publication instant (time-zone aware, in the zone ``tz``); None unless ok.
    ts: datetime | None
    #: IANA name of the zone of ``ts`` (``Asia/Seoul``, ``UTC``, ``Etc/GMT-9``); None
    #: unless ok.
    tz: str | None
    #: True when the page gave no zone and the publisher's default zone was used.
    zone_assumed: bool
    #: The text the time was read from (with its marker), or "" when none.
    matched: str
    #: ``"ok"`` or ``"needs_timestamp"`` (the page does not state a usable time).
    status: str
    #: Where the time comes from, or why there is none.
    reason: str

    @property
    def ok(self) -> bool:
        """True when ``ts`` holds the publication time."""
        return self.status == STATUS_OK


@dataclass(frozen=True)
class Alias:
    """One row of the alias table."""

    #: The security (the project's ticker: ``NVDA``, ``000660.KS``).
    ticker: str
    #: The text that names it (``SK하이닉스``, ``SK hynix``, ``000660``).
    alias: str
    #: One of :data:`ALIAS_KINDS`.
    kind: str
    #: Line of the CSV file, when read from one.
    line: int | None = None


@dataclass(frozen=True)
class Mention:
    """A security an article is about."""

    #: The security.
    ticker: str
    #: Mentions in the body and the headline (an alias and its code side by side,
    #: ``SK하이닉스(000660)``, count once).
    count: int
    #: The texts found, as written, in order of first appearance.
    aliases_found: tuple[str, ...]
    #: ``0.4 * in_headline + 0.4 * share + 0.2 * earliness``, in [0, 1] (docs/news.md).
    relevance: float
    #: True when the headline names it.
    in_headline: bool


@dataclass(frozen=True)
class Article:
    """An article turned into the facts an event needs."""

    #: Where it came from (URL or file), as given by the caller.
    source: str
    #: The headline ("" when the page has none that can be told apart from the body).
    headline: str
    #: The publisher, given by the caller or stated on the page; None when unknown.
    publisher: str | None
    #: The publication time (or why there is none).
    time: PublicationTime
    #: Linked securities, most relevant first.
    mentions: tuple[Mention, ...]
    #: sha256 (hex) of the normalized body: equal for the same article scraped twice.
    body_hash: str
    #: Length of the body in characters.
    text_length: int
    #: The article body (navigation, side lists, comments and copyright removed).
    body: str

    @property
    def tickers(self) -> tuple[str, ...]:
        """The linked tickers, most relevant first."""
        return tuple(m.ticker for m in self.mentions)


@dataclass(frozen=True)
class FeedItem:
    """One entry of an RSS or Atom feed."""

    #: The title as given (text, not HTML: escaping is the job of whoever renders it).
    title: str
    #: The entry's link, or None.
    link: str | None
    #: Publication time (aware, UTC), or None when missing or without a time zone.
    published: datetime | None
    #: The summary as plain text (HTML tags, scripts and styles removed).
    summary: str
    #: The entry's id (guid), or None.
    id: str | None = None
    #: Last update time (aware, UTC), or None.
    updated: datetime | None = None


class FeedItems(list[FeedItem]):
    """The entries of a feed, with the problems met while reading it.

    A list of :class:`FeedItem`; ``warnings`` lists recoverable problems (a feed
    that is not well-formed but whose entries could be read, a date without a time
    zone), so that the caller reports them instead of losing them silently.
    """

    def __init__(self, items: Iterable[FeedItem] = (), warnings: Iterable[str] = ()) -> None:
        super().__init__(items)
        self.warnings: tuple[str, ...] = tuple(warnings)


# ============================================================================ text helpers


def normalize_text(text: str) -> str:
    """Text for comparison and hashing: NFKC, whitespace runs to one space, stripped."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip()


_BULLET_RE = re.compile(r"^(?:[-–—•·∙◦▶▷►▪■□◆◇○●※*ㆍ]+|\d{1,2}[.)](?=\s))\s*")
_SENTENCE_END_RE = re.compile(r"[.!?。！？…](?:[\"'”’」』)\]]*)$")
_COPYRIGHT_RE = re.compile(
    r"copyright|all\s+rights\s+reserved|저작권자|무단\s*(?:전재|복제|배포)|재배포\s*금지",
    re.IGNORECASE,
)
_CREDIT_RE = re.compile(r"[ⓒ©]")  # a photo credit inside the article ("ⓒ뉴스1"), or a footer
_COMMENT_HEADING_RE = re.compile(
    r"(?:댓글\s*(?:목록|\d+\s*개?|\(\d+\))?|전체\s*댓글.*|comments?(?:\s*\(\d+\))?"
    r"|\d+\s+comments?|leave\s+a\s+(?:comment|reply)|reader\s+comments)",
    re.IGNORECASE,
)
_BLOCK_HEADING_RE = re.compile(
    r"관련\s*(?:기사|뉴스)|최신\s*(?:뉴스|기사)|많이\s*(?:본|읽은)|인기\s*(?:기사|뉴스)"
    r"|주요\s*(?:기사|뉴스)|추천\s*(?:기사|뉴스)|다른\s*기사|함께\s*(?:보면|볼)|이\s*시각"
    r"|헤드라인|실시간\s*(?:뉴스|인기)|best\s*clicks|most\s+(?:read|viewed|popular)"
    r"|related(?:\s+(?:articles?|stories|news|posts?))?|read\s+(?:more|next)"
    r"|latest\s+(?:news|stories)|trending|you\s+may\s+also\s+like|more\s+from|top\s+stories"
    r"|recommended",
    re.IGNORECASE,
)
_NAV_RE = re.compile(
    r"(?:본문\s*바로\s*가기|사이트\s*내\s*전체\s*검색|skip\s+to\s+(?:main\s+)?content|메뉴|menu"
    r"|로그인|log\s*in|sign\s*in|회원가입|전체\s*메뉴|검색)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _Line:
    """One line of a page, classified."""

    start: int
    end: int
    text: str  # stripped
    bullet: bool
    prose: bool
    copyright: bool
    credit: bool
    comment_heading: bool
    block_heading: bool

    @property
    def blank(self) -> bool:
        return not self.text


def _is_prose(content: str) -> bool:
    """A line of running text: long, or a sentence (ends with . ! ? …)."""
    return len(content) >= 80 or (len(content) >= 25 and bool(_SENTENCE_END_RE.search(content)))


def _classify(text: str) -> list[_Line]:
    lines: list[_Line] = []
    pos = 0
    for raw in text.splitlines(keepends=True):
        start, pos = pos, pos + len(raw)
        s = raw.strip()
        bullet_m = _BULLET_RE.match(s)
        bullet = bool(bullet_m) and bool(s)
        content = s[bullet_m.end():] if bullet_m else s
        prose = _is_prose(content)
        short = len(s) < 40 and not prose
        lines.append(_Line(
            start=start, end=start + len(raw.rstrip("\r\n")), text=s, bullet=bullet,
            prose=prose,
            copyright=len(s) < 200 and bool(_COPYRIGHT_RE.search(s)),
            credit=len(s) < 200 and bool(_CREDIT_RE.search(s)),
            comment_heading=bool(_COMMENT_HEADING_RE.fullmatch(s)),
            block_heading=short and bool(_BLOCK_HEADING_RE.search(s)),
        ))
    return lines


def _headline_runs(lines: Sequence[_Line]) -> set[int]:
    """Indices of lines in runs of 3+ consecutive short non-sentence lines (blank lines ignored)."""
    out: set[int] = set()
    run: list[int] = []
    for i, ln in enumerate([*lines, None]):
        if ln is not None and ln.blank:
            continue
        if ln is not None and not ln.prose:
            run.append(i)
            continue
        if len(run) >= 3:
            out.update(run)
        run = []
    return out


@dataclass(frozen=True)
class _Layout:
    """Where the article is on a page."""

    lines: list[_Line]
    #: Indices of the body lines.
    body: list[int]
    #: Index of the first body line (None: no running text, the text is a snippet).
    first_prose: int | None
    #: Lines that belong to something else: side lists, related blocks, comments.
    excluded: frozenset[int]


def _layout(text: str) -> _Layout:
    lines = _classify(text)
    runs = _headline_runs(lines)
    body: list[int] = []
    excluded: set[int] = set()
    in_block = False
    first_prose: int | None = None
    stopped = False
    for i, ln in enumerate(lines):
        if ln.blank:
            continue
        if stopped:
            excluded.add(i)
            continue
        if ln.block_heading:
            in_block = True
            excluded.add(i)
            continue
        if in_block:
            if (ln.prose and not ln.bullet) or _is_byline(ln.text):
                in_block = False
            else:
                excluded.add(i)
                continue
        if ln.copyright or ln.comment_heading:
            excluded.add(i)
            if first_prose is not None:
                stopped = True  # the article ends here: comments, footer
            continue
        if ln.credit:
            excluded.add(i)  # "ⓒ 뉴스1": dropped, but the article may go on
            continue
        if ln.bullet and not ln.prose:
            excluded.add(i)  # a list of headlines or links
            continue
        if first_prose is None:
            if ln.prose and not ln.bullet:
                first_prose = i
            else:
                continue
        body.append(i)
    if first_prose is None:
        # No running text: a snippet (a feed summary, one sentence). Keep what is
        # not a list, a copyright line or a related block.
        body = [i for i, ln in enumerate(lines) if not ln.blank and i not in excluded]
    else:
        body = [i for i in body if i not in runs]
        while body and not lines[body[-1]].prose:
            body.pop()
    return _Layout(lines=lines, body=body, first_prose=first_prose,
                   excluded=frozenset(excluded))


def _is_byline(line: str) -> bool:
    """A line that is a date-time and little else (``입력 2025.02.06 14:03 | 수정 ...``)."""
    found = _scan_absolute(line)
    return bool(found) and len(_title_text(line, found)) < 10


def _title_text(line: str, found: Sequence[_Found]) -> str:
    """The letters of a line once its dates and publication markers are removed."""
    for f in sorted(found, key=lambda f: -f.start):
        line = line[:f.start] + " " + line[f.end:]
    return re.sub(r"[\W\d_]+", "", _MARKER_WORDS_RE.sub(" ", line))


def article_body(text: str) -> str:
    """The article's own text: navigation, side lists, comments and copyright removed.

    Heuristic on lines (docs/news.md): the body starts at the first line of running
    text (80+ characters, or a sentence of 25+ characters ending with ``. ! ? …``)
    and ends at the last one before a comment-box heading (``댓글목록``,
    ``Comments``) or a copyright line. Inside, it drops bulleted short lines
    (lists of headlines or links), runs of three or more short non-sentence lines
    (headline lists, tables, navigation), and related-article blocks (``관련기사``,
    ``많이 본 뉴스``, ``Related``, ``... 다른 기사 보기``) up to the next paragraph.
    A text with no running text at all (a snippet) is kept, minus those lists.

    Parameters
    ----------
    text
        The page as plain text (lines as on the page).

    Returns
    -------
    str
        The body lines, stripped, joined with newlines.
    """
    lay = _layout(text)
    return "\n".join(lay.lines[i].text for i in lay.body)


# ============================================================================ time candidates

_MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}
_MON = (r"(?P<mon>Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
        r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)")
_KO_DATE_RE = re.compile(
    r"(?<!\d)(?P<y>\d{4})\s*년\s*(?P<m>\d{1,2})\s*월\s*(?P<d>\d{1,2})\s*일")
_NUM_DATE_RE = re.compile(
    r"(?<![\d.\-/])(?P<y>\d{4}|\d{2})(?P<sep>[-./])(?P<m>\d{1,2})(?P=sep)(?P<d>\d{1,2})(?!\d)\.?")
_EN_MDY_RE = re.compile(
    r"\b" + _MON + r"\.?\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<y>\d{4})(?!\d)", re.IGNORECASE)
_EN_DMY_RE = re.compile(
    r"\b(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*\.?,?\s+)?(?P<d>\d{1,2})\s+" + _MON
    + r"\.?,?\s+(?P<y>\d{4})(?!\d)", re.IGNORECASE)
_DATE_RES = (_KO_DATE_RE, _NUM_DATE_RE, _EN_MDY_RE, _EN_DMY_RE)

_TIME_RE = re.compile(
    r"(?:\s*\([^)\n]{1,4}\))?"                       # weekday: (목), (Thu)
    r"(?:T|\s*,?\s*(?:at\s+)?)"
    r"(?:(?P<ampm1>오전|오후)\s*)?"
    r"(?P<hh>\d{1,2})"
    r"(?::(?P<mi>\d{2})(?::(?P<ss>\d{2})(?:[.,]\d+)?)?|\s*시\s*(?:(?P<kmi>\d{1,2})\s*분)?)"
    r"(?:\s*(?P<ampm2>[AaPp]\.?\s?[Mm]\.?)(?![A-Za-z]))?"
)
_ZONE_RE = re.compile(
    r"(?:(?P<z>Z)(?![A-Za-z0-9])"
    r"|(?P<off>[+\-−]\d{2}:?\d{2})(?!\d)"
    r"|\s*\(?\s*(?:(?P<utc>UTC|GMT)(?:\s*(?P<usign>[+\-−])\s*(?P<uh>\d{1,2})(?::?(?P<um>\d{2}))?)?"
    r"|(?P<off2>[+\-−]\d{2}:?\d{2})(?!\d)"
    r"|(?P<abbr>KST|JST|HKT|SGT|EST|EDT|ET|PST|PDT|PT|CET|CEST|BST|한국시간|서울시간))"
    r"(?![A-Za-z0-9])(?:\s*\))?)"
)
#: Zone abbreviations: IANA zone, and the fixed offset the abbreviation means (None:
#: the zone's own offset on that date, e.g. "ET" is EST or EDT).
_ZONE_ABBR: dict[str, tuple[str, timedelta | None]] = {
    "KST": ("Asia/Seoul", None), "한국시간": ("Asia/Seoul", None),
    "서울시간": ("Asia/Seoul", None), "JST": ("Asia/Tokyo", None),
    "HKT": ("Asia/Hong_Kong", None), "SGT": ("Asia/Singapore", None),
    "ET": ("America/New_York", None), "EST": ("America/New_York", timedelta(hours=-5)),
    "EDT": ("America/New_York", timedelta(hours=-4)),
    "PT": ("America/Los_Angeles", None), "PST": ("America/Los_Angeles", timedelta(hours=-8)),
    "PDT": ("America/Los_Angeles", timedelta(hours=-7)),
    "CET": ("Europe/Berlin", timedelta(hours=1)), "CEST": ("Europe/Berlin", timedelta(hours=2)),
    "BST": ("Europe/London", timedelta(hours=1)),
}
_REL_KO_RE = re.compile(r"(?<!\d)(?P<n>\d{1,3})\s*(?P<unit>초|분|시간|일|주)\s*전(?![가-힣])")
_REL_EN_RE = re.compile(
    r"\b(?P<n>\d{1,3}|an?|one)\s+(?P<unit>sec(?:ond)?s?|min(?:ute)?s?|hours?|hrs?|days?|weeks?)"
    r"\s+ago\b", re.IGNORECASE)
_UNIT_SECONDS = {"초": 1, "분": 60, "시간": 3600, "일": 86400, "주": 604800,
                 "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class _Zone:
    label: str
    name: str | None  # IANA
    offset: timedelta | None  # fixed offset the text means


@dataclass(frozen=True)
class _Found:
    """A date or time found in a text."""

    start: int
    end: int
    text: str
    local: datetime | None  # naive wall time (absolute times)
    has_time: bool
    zone: _Zone | None
    ago: timedelta | None = None  # relative times


def _sign(s: str) -> int:
    return -1 if s in "-−" else 1


def _zone_from(m: re.Match[str]) -> _Zone:
    label = m.group(0).strip().strip("()").strip()
    if m.group("z"):
        return _Zone(label, "UTC", timedelta(0))
    off = m.group("off") or m.group("off2")
    if off:
        digits = off[1:].replace(":", "")
        delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        return _Zone(label, None, _sign(off[0]) * delta)
    if m.group("utc"):
        if not m.group("usign"):
            return _Zone(label, "UTC", timedelta(0))
        delta = timedelta(hours=int(m.group("uh")), minutes=int(m.group("um") or 0))
        return _Zone(label, None, _sign(m.group("usign")) * delta)
    name, fixed = _ZONE_ABBR[m.group("abbr")]
    return _Zone(label, name, fixed)


def _scan_absolute(text: str) -> list[_Found]:
    found: list[_Found] = []
    for rx in _DATE_RES:
        for m in rx.finditer(text):
            y = int(m.group("y"))
            if y < 100:
                y += 2000
            if not 1990 <= y <= 2100:
                continue
            month = (_MONTHS[m.group("mon")[:3].lower()] if "mon" in rx.groupindex
                     else int(m.group("m")))
            end = m.end()
            hour = minute = second = 0
            has_time = False
            tm = _TIME_RE.match(text, end)
            if tm:
                hour = int(tm.group("hh"))
                minute = int(tm.group("mi") or tm.group("kmi") or 0)
                second = int(tm.group("ss") or 0)
                ampm = (tm.group("ampm1") or tm.group("ampm2") or "").lower()
                if ampm.startswith(("p", "오후")) and hour < 12:
                    hour += 12
                elif ampm.startswith(("a", "오전")) and hour == 12:
                    hour = 0
                has_time = hour <= 23 and minute <= 59 and second <= 59
                if has_time:
                    end = tm.end()
                else:
                    hour = minute = second = 0
            if len(m.group("y")) == 2 and (not has_time or m.group("sep") == "/"):
                continue  # "25-01-30" alone is too ambiguous; "12/01/25" is US month/day
            try:
                local = datetime(y, month, int(m.group("d")), hour, minute, second)
            except ValueError:
                continue
            zone = None
            if has_time:
                zm = _ZONE_RE.match(text, end)
                if zm:
                    zone = _zone_from(zm)
                    end = zm.end()
            found.append(_Found(m.start(), end, text[m.start():end].strip(), local,
                                has_time, zone))
    return _no_overlaps(found)


def _scan_relative(text: str) -> list[_Found]:
    found: list[_Found] = []
    for m in _REL_KO_RE.finditer(text):
        ago = timedelta(seconds=int(m.group("n")) * _UNIT_SECONDS[m.group("unit")])
        found.append(_Found(m.start(), m.end(), m.group(0), None, True, None, ago))
    for m in _REL_EN_RE.finditer(text):
        n_text = m.group("n").lower()
        n = int(n_text) if n_text.isdigit() else 1
        unit = m.group("unit").lower()
        seconds = _UNIT_SECONDS["m" if unit.startswith("min") else unit[0]]
        found.append(_Found(m.start(), m.end(), m.group(0), None, True, None,
                            timedelta(seconds=n * seconds)))
    return found


def _no_overlaps(found: list[_Found]) -> list[_Found]:
    out: list[_Found] = []
    for f in sorted(found, key=lambda f: (f.start, -(f.end - f.start))):
        if out and f.start < out[-1].end:
            continue
        out.append(f)
    return out


# ----------------------------------------------------------------------------- markers

_PUBLISHED, _UPDATED, _PLAIN = "published", "updated", "plain"

_KO_PREFIX_RE = re.compile(
    r"(?P<m>기사\s*입력|최초\s*입력|입력|작성\s*일시|작성\s*일자|작성일|작성|등록\s*일시|등록\s*일자"
    r"|등록일|등록|발행\s*일시|발행일|발행|게재일|게재|송고\s*시간|송고|승인|출고|보도\s*일시|보도일"
    r"|최종\s*수정\s*일?|최종\s*업데이트|수정\s*일시|수정일|수정|업데이트)"
    r"\s*(?:시간|일시)?\s*[:：|]?\s*$"
)
_EN_PREFIX_RE = re.compile(
    r"(?P<m>(?:first\s+|originally\s+)?published|posted|date\s+published|publication\s+date"
    r"|released|(?:last\s+)?updated|(?:last\s+)?modified)"
    r"(?:\s+by\s+[^\d\n|]{1,40}?)?(?:\s+(?:on|at))?\s*[:：]?\s*$",
    re.IGNORECASE,
)
# thebell: "이 기사는 2025년 02월 03일 07시15분 thebell에 표출된 기사입니다"
_SUFFIX_SHOWN_RE = re.compile(r"^[^\n]{0,30}?에\s*표출")
_SUFFIX_RE = re.compile(r"^\s*[|:]?\s*(?:기사\s*)?"
                        r"(?P<m>입력|작성|송고|게재|발행|등록|최종\s*수정|수정|업데이트)")
_UPDATE_WORDS = ("수정", "업데이트", "updated", "modified")
_MARKER_WORDS_RE = re.compile(
    r"기사|입력|작성일?|등록일?|발행일?|게재일?|송고|승인|출고|보도일?|최초|최종|수정일?|업데이트|일시|일자"
    r"|시간|표출된|이\s*기사는|published|posted|updated|modified|released|first|originally|last"
    r"|date|publication|\bon\b|\bat\b|\bby\b",
    re.IGNORECASE,
)


def _role_of(marker: str) -> str:
    low = marker.lower()
    return _UPDATED if any(w in low for w in _UPDATE_WORDS) else _PUBLISHED


def _prefix_marker(text: str, line_start: int, f: _Found) -> tuple[str, int] | None:
    """The publication marker just before a date: (role, start of the marker)."""
    window_start = max(line_start, f.start - 60)
    window = text[window_start:f.start]
    m = _KO_PREFIX_RE.search(window)
    if m:
        return _role_of(m.group("m")), window_start + m.start()
    m = _EN_PREFIX_RE.search(window)
    if m:
        before = window[:m.start()].rstrip()
        # "Published", or a marker opening the line or after a separator; not prose
        # like "... was published on Jan 27, 2025".
        if m.group("m")[0].isupper() or not before or before[-1] in "|·•,;(/[–—-":
            return _role_of(m.group("m")), window_start + m.start()
    return None


def _suffix_marker(text: str, line_end: int, f: _Found, next_start: int) -> tuple[str, int] | None:
    """The publication marker just after a date: (role, end of the marker)."""
    window = text[f.end:min(line_end, next_start, f.end + 40)]
    m = _SUFFIX_SHOWN_RE.match(window)
    if m:
        end = f.end + m.end()
        tail = re.match(r"된\s*기사", text[end:end + 6])
        return _PUBLISHED, end + (tail.end() if tail else 0)
    m = _SUFFIX_RE.match(window)
    if m:
        return _role_of(m.group("m")), f.end + m.end()
    return None


@dataclass(frozen=True)
class _Candidate:
    found: _Found
    role: str  # published, updated, plain
    matched: str
    source: str  # what introduced it, for the reason
    line: int | None  # line index (None: structured HTML data)
    structured: bool = False


def _line_index(lines: Sequence[_Line], pos: int) -> int:
    lo, hi = 0, len(lines) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if lines[mid].start <= pos:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _text_candidates(text: str, lay: _Layout, relative: bool) -> list[_Candidate]:
    found = _scan_absolute(text)
    if relative:
        found = _no_overlaps(found + _scan_relative(text))
    by_line: dict[int, list[_Found]] = {}
    for f in found:
        by_line.setdefault(_line_index(lay.lines, f.start), []).append(f)
    out: list[_Candidate] = []
    for li, fs in by_line.items():
        line = lay.lines[li]
        marks: list[tuple[tuple[str, int] | None, tuple[str, int] | None]] = []
        for k, f in enumerate(fs):
            nxt = fs[k + 1].start if k + 1 < len(fs) else line.end
            marks.append((_prefix_marker(text, line.start, f),
                          _suffix_marker(text, line.end, f, nxt)))
        # One style per line: "입력 A 수정 B" (markers before) or "A 입력 B 수정" (after).
        style = "prefix" if marks[0][0] else ("suffix" if marks[0][1] else "any")
        for f, (pre, suf) in zip(fs, marks, strict=True):
            if style == "prefix":
                mark, where = pre, "before"
            elif style == "suffix":
                mark, where = suf, "after"
            else:
                mark, where = (pre, "before") if pre else (suf, "after")
            if mark is None:
                out.append(_Candidate(f, _PLAIN, f.text, "a date-time", li))
            elif where == "before":
                matched = text[mark[1]:f.end].strip()
                out.append(_Candidate(f, mark[0], matched, f"the marker in '{matched}'", li))
            else:
                matched = text[f.start:mark[1]].strip()
                out.append(_Candidate(f, mark[0], matched, f"the marker in '{matched}'", li))
    return sorted(out, key=lambda c: c.found.start)


def _dated_list_lines(text: str, lay: _Layout, cands: Sequence[_Candidate]) -> set[int]:
    """Lines of a list of dated headlines: 2+ consecutive lines, each a date and a title."""
    by_line: dict[int, list[_Found]] = {}
    for c in cands:
        if c.line is not None:
            by_line.setdefault(c.line, []).append(c.found)
    dated: set[int] = set()
    for li, fs in by_line.items():
        line = lay.lines[li]
        local = [_Found(f.start - line.start, f.end - line.start, f.text, f.local, f.has_time,
                        f.zone, f.ago) for f in fs]
        if len(_title_text(text[line.start:line.end], local)) >= 10:
            dated.add(li)
    out: set[int] = set()
    nonblank = [i for i, ln in enumerate(lay.lines) if not ln.blank]
    run: list[int] = []
    for i in [*nonblank, -1]:
        if i in dated:
            run.append(i)
            continue
        if len(run) >= 2:
            out.update(run)
        run = []
    return out


# ----------------------------------------------------------------------------- resolution


def _zoneinfo(name: str, what: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(
            f"{what} '{name}' is not an IANA time zone name; use e.g. 'Asia/Seoul' "
            "or 'America/New_York'") from exc


def _name_for(aware: datetime, publisher_tz: str | None) -> str:
    """IANA name for a fixed-offset time: the publisher's zone when it agrees."""
    off = aware.utcoffset() or timedelta(0)
    tzinfo = aware.tzinfo
    if isinstance(tzinfo, ZoneInfo):
        return tzinfo.key
    if publisher_tz and ZoneInfo(publisher_tz).utcoffset(aware.replace(tzinfo=None)) == off:
        return publisher_tz
    if off == timedelta(0):
        return "UTC"
    hours, rest = divmod(off, timedelta(hours=1))
    if rest == timedelta(0) and -12 <= hours <= 14:
        return f"Etc/GMT{-hours:+d}"  # IANA's Etc zones have the sign reversed
    return "UTC"


def _resolve(c: _Candidate, publisher_tz: str | None,
             reference_time: datetime | None) -> PublicationTime:
    f = c.found
    why = f"read from {c.source}"
    if f.ago is not None:
        assert reference_time is not None
        name = _name_for(reference_time, None)
        ts = (reference_time - f.ago).astimezone(ZoneInfo(name))
        return PublicationTime(ts, name, False, c.matched, STATUS_OK,
                               f"{why}: {f.text} before the reference time "
                               f"{reference_time.isoformat()}")
    assert f.local is not None
    if f.zone is not None:
        z = f.zone
        if z.offset is not None:
            aware = f.local.replace(tzinfo=timezone(z.offset))
            name = z.name or _name_for(aware, publisher_tz)
        else:
            assert z.name is not None
            aware = f.local.replace(tzinfo=ZoneInfo(z.name))
            name = z.name
        ts = aware.astimezone(ZoneInfo(name))
        return PublicationTime(ts, name, False, c.matched, STATUS_OK,
                               f"{why}; zone written on the page ({z.label})")
    if publisher_tz is not None:
        ts = f.local.replace(tzinfo=ZoneInfo(publisher_tz))
        return PublicationTime(ts, publisher_tz, True, c.matched, STATUS_OK,
                               f"{why}; no zone on the page: the publisher's zone "
                               f"{publisher_tz} is assumed")
    return PublicationTime(None, None, False, c.matched, STATUS_NEEDS_TIMESTAMP,
                           f"a time without a zone and no default zone for the publisher "
                           f"('{c.matched}'): pass publisher_tz")


def _find_time(text: str, publisher_tz: str | None, reference_time: datetime | None,
               structured: Sequence[_Candidate] = ()) -> PublicationTime:
    if publisher_tz is not None:
        _zoneinfo(publisher_tz, "publisher_tz")
    if reference_time is not None and reference_time.utcoffset() is None:
        raise InputError("reference_time must be time-zone aware (e.g. "
                         "datetime.now(ZoneInfo('Asia/Seoul'))), not a naive datetime")
    lay = _layout(text)
    cands = _text_candidates(text, lay, relative=reference_time is not None)
    skip = set(lay.excluded) | _dated_list_lines(text, lay, cands)
    usable = [c for c in cands if c.line not in skip]
    header = [c for c in usable
              if lay.first_prose is None or (c.line is not None and c.line < lay.first_prose)]

    def timed(cs: Iterable[_Candidate], role: str) -> list[_Candidate]:
        return [c for c in cs if c.role == role and c.found.has_time]

    # 1. structured HTML data, 2. text markers, 3. update markers, 4. a lone byline time
    choice: _Candidate | None = None
    for group in (timed(structured, _PUBLISHED), timed(usable, _PUBLISHED),
                  timed([*structured, *usable], _UPDATED)):
        if group:
            choice = group[0]
            break
    if choice is None:
        plain = timed(header, _PLAIN)
        values = {(c.found.local, c.found.zone, c.found.ago) for c in plain}
        if len(values) == 1:
            c = plain[0]
            choice = _Candidate(c.found, _PLAIN, c.matched, "the byline above the article",
                                c.line)
    if choice is not None:
        result = _resolve(choice, publisher_tz, reference_time)
        if choice.role == _UPDATED and result.ok:
            result = PublicationTime(result.ts, result.tz, result.zone_assumed, result.matched,
                                     result.status, result.reason
                                     + " (an update time: the page states no publication time)")
        return result
    return PublicationTime(None, None, False, "", STATUS_NEEDS_TIMESTAMP,
                           _why_none(text, [*structured, *usable], reference_time))


def _why_none(text: str, cands: Sequence[_Candidate], reference_time: datetime | None) -> str:
    marked = [c for c in cands if c.role != _PLAIN]
    if marked:
        return (f"the page states only a date, no time of day ('{marked[0].matched}')")
    if reference_time is None:
        rel = _scan_relative(text)
        if rel:
            return (f"a relative time ('{rel[0].text}') and no reference_time to resolve it")
    if cands:
        shown = ", ".join(f"'{c.matched}'" for c in cands[:3])
        return (f"no publication marker; the dates on the page ({shown}) may belong to other "
                "posts, so none is taken")
    return "no publication time found on the page"


def find_publication_time(
    text: str,
    *,
    publisher_tz: str | None = None,
    reference_time: datetime | None = None,
) -> PublicationTime:
    """The time a page states for its article, with its time zone.

    Formats: ``2025년 02월 03일 07시15분``, ``25-01-30 18:22``, ``2025.02.06 14:03``,
    ``Jan 30, 2025 6:22 PM KST``, ``30 Jan 2025 18:22 +0900``, ISO 8601
    (``2025-01-30T18:22:00+09:00``), 오전/오후 and AM/PM; relative times (``3시간전``,
    ``3 hours ago``, ``30분 전``) only when ``reference_time`` is given.

    Which time: the first one introduced by a publication marker (``작성일``,
    ``입력``, ``기사입력``, ``등록``, ``발행``, ``... 표출된 기사``, ``Published``,
    ``Posted``); else the first update time (``수정``, ``Updated``); else a lone
    date-time in the byline block above the article. Times in side lists of other
    headlines, related-article blocks and comment boxes are never taken.

    Parameters
    ----------
    text
        The page as plain text.
    publisher_tz
        The publisher's IANA zone, used when the page writes no zone.
    reference_time
        When the page was fetched (aware): resolves relative times.

    Returns
    -------
    PublicationTime
        ``status="ok"`` with ``ts``, or ``status="needs_timestamp"`` and the reason.

    Raises
    ------
    InputError
        ``publisher_tz`` is not an IANA zone, or ``reference_time`` is naive.
    """
    return _find_time(text, publisher_tz, reference_time)


# ============================================================================ aliases

_HANGUL_RE = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")


@dataclass(frozen=True)
class AliasTable:
    """The names, short names, tickers and codes of the securities to link.

    Build one with :func:`load_aliases` (from ``events/aliases.csv``) or
    :meth:`from_rows`.
    """

    #: The rows.
    aliases: tuple[Alias, ...]
    #: The CSV file it was read from, if any.
    path: Path | None = None

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str, str] | Alias],
                  path: Path | None = None) -> AliasTable:
        """A validated table from ``(ticker, alias, kind)`` rows.

        Raises
        ------
        InputError
            An empty field, an unknown kind, or one alias given for two securities.
        """
        where = str(path) if path else "alias table"
        out: list[Alias] = []
        seen: dict[str, Alias] = {}
        for n, row in enumerate(rows, start=1):
            a = row if isinstance(row, Alias) else Alias(*row)
            a = Alias(a.ticker.strip(), a.alias.strip(), a.kind.strip().lower(), a.line)
            at = f"{where}:{a.line}" if a.line else f"{where} row {n}"
            if not a.ticker or not a.alias:
                raise InputError(f"{at}: ticker and alias must not be empty")
            if a.kind not in ALIAS_KINDS:
                raise InputError(f"{at}: unknown kind '{a.kind}'; use one of "
                                 f"{', '.join(ALIAS_KINDS)}")
            if a.kind != "exclude":
                key = normalize_text(a.alias).casefold()
                other = seen.get(key)
                if other is not None and other.ticker != a.ticker:
                    raise InputError(
                        f"{at}: alias '{a.alias}' is given for {a.ticker} and for "
                        f"{other.ticker}"
                        + (f" (line {other.line})" if other.line else "")
                        + ": an alias must name one security; remove one of the rows")
                seen.setdefault(key, a)
            out.append(a)
        return cls(tuple(out), path)

    def __len__(self) -> int:
        return len(self.aliases)

    @property
    def tickers(self) -> tuple[str, ...]:
        """The securities, in the order of the table."""
        return tuple(dict.fromkeys(a.ticker for a in self.aliases if a.kind != "exclude"))

    def names(self, ticker: str) -> tuple[str, ...]:
        """The aliases of one security."""
        return tuple(a.alias for a in self.aliases if a.ticker == ticker and a.kind != "exclude")

    @cached_property
    def _patterns(self) -> list[tuple[re.Pattern[str], Alias]]:
        return [(_alias_pattern(a), a) for a in self.aliases]


def _alias_pattern(a: Alias) -> re.Pattern[str]:
    alias = normalize_text(a.alias)
    if a.kind in ("ticker", "code"):
        return re.compile(r"(?<![A-Za-z0-9])" + re.escape(alias) + r"(?![A-Za-z0-9])")
    korean = bool(_HANGUL_RE.search(alias))
    gap = r"\s*" if korean else r"\s+"
    body = gap.join(re.escape(part) for part in alias.split(" "))
    head = r"(?<![A-Za-z0-9])" if re.match(r"[A-Za-z0-9]", alias) else ""
    tail = r"(?![A-Za-z0-9])" if re.search(r"[A-Za-z0-9]$", alias) else ""
    return re.compile(head + body + tail, re.IGNORECASE)


def load_aliases(path: Path | None = None) -> AliasTable:
    """Read the alias table (CSV with columns ``ticker,alias,kind``).

    Lines starting with ``#`` are comments; other columns (e.g. ``note``) are
    ignored. The format is in ``docs/news.md``.

    Parameters
    ----------
    path
        The CSV file; default :data:`DEFAULT_ALIASES` (``events/aliases.csv``).

    Raises
    ------
    InputError
        The file cannot be read, lacks a column, or has an invalid row.
    """
    path = Path(path) if path is not None else DEFAULT_ALIASES
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the alias table ({exc.strerror}); create a "
                         "CSV with the columns ticker,alias,kind (see docs/news.md)") from exc
    numbered = [(n, line) for n, line in enumerate(raw.splitlines(), start=1)
                if line.strip() and not line.lstrip().startswith("#")]
    if not numbered:
        raise InputError(f"{path}: the alias table is empty; its first line must be the "
                         "header ticker,alias,kind")
    reader = csv.reader([line for _, line in numbered])
    header = [h.strip().lower() for h in next(reader)]
    missing = [c for c in ("ticker", "alias", "kind") if c not in header]
    if missing:
        raise InputError(f"{path}:{numbered[0][0]}: missing column(s) {', '.join(missing)}; "
                         "the header must be ticker,alias,kind")
    col = {name: header.index(name) for name in ("ticker", "alias", "kind")}
    rows: list[Alias] = []
    for (n, _), fields in zip(numbered[1:], reader, strict=True):
        if len(fields) < len(header):
            raise InputError(f"{path}:{n}: {len(fields)} field(s), the header has "
                             f"{len(header)}; quote an alias that contains a comma")
        rows.append(Alias(fields[col["ticker"]], fields[col["alias"]], fields[col["kind"]], n))
    return AliasTable.from_rows(rows, path)


# ============================================================================ linking


@dataclass(frozen=True)
class _Hit:
    start: int
    end: int
    ticker: str
    text: str


_JOIN_RE = re.compile(r"[\s()\[\]（）,/·:]*")


def _hits(text: str, table: AliasTable) -> list[_Hit]:
    """Mentions in a text: leftmost-longest alias, ``exclude`` texts removed.

    An alias and its code side by side (``SK하이닉스(000660)``) count once.
    """
    raw: list[tuple[int, int, Alias]] = []
    for rx, a in table._patterns:
        raw.extend((m.start(), m.end(), a) for m in rx.finditer(text))
    raw.sort(key=lambda h: (h[0], -(h[1] - h[0])))
    chosen: list[tuple[int, int, Alias]] = []
    for h in raw:
        if chosen and h[0] < chosen[-1][1]:
            continue
        chosen.append(h)
    out: list[_Hit] = []
    for start, end, a in chosen:
        if a.kind == "exclude":
            continue
        prev = out[-1] if out else None
        if (prev is not None and prev.ticker == a.ticker
                and _JOIN_RE.fullmatch(text, prev.end, start)):
            out[-1] = _Hit(prev.start, end, a.ticker, prev.text + "\x00" + text[start:end])
            continue
        out.append(_Hit(start, end, a.ticker, text[start:end]))
    return out


def _link(body: str, headline: str, table: AliasTable) -> list[Mention]:
    body = unicodedata.normalize("NFKC", body)
    headline = unicodedata.normalize("NFKC", headline)
    in_body = _hits(body, table)
    in_head = _hits(headline, table)
    total = len(in_body) + len(in_head)
    mentions: list[Mention] = []
    for ticker in dict.fromkeys(h.ticker for h in [*in_head, *in_body]):
        hb = [h for h in in_body if h.ticker == ticker]
        hh = [h for h in in_head if h.ticker == ticker]
        count = len(hb) + len(hh)
        earliness = 1 - hb[0].start / len(body) if hb else 0.0
        relevance = 0.4 * bool(hh) + 0.4 * count / total + 0.2 * earliness
        texts = [t for h in [*hh, *hb] for t in h.text.split("\x00")]
        mentions.append(Mention(ticker, count, tuple(dict.fromkeys(texts)),
                                round(min(1.0, relevance), 3), bool(hh)))
    mentions.sort(key=lambda m: (-m.relevance, -m.count, m.ticker))
    return mentions


def link_securities(text: str, aliases: AliasTable, *, headline: str = "") -> list[Mention]:
    """The securities an article is about, most relevant first.

    Matching is done on :func:`article_body` of ``text`` and on ``headline``, so
    that a company named only in a side list, the navigation or a comment is not
    linked. Korean aliases match as substrings, English names as whole words
    (case-insensitive), tickers and codes as whole words (exact); where aliases
    overlap the longest wins (``SK하이닉스`` is one mention, not also ``하이닉스``).

    Relevance (docs/news.md): ``0.4 * in_headline + 0.4 * count / all_mentions +
    0.2 * (1 - first_position / body_length)``.

    Parameters
    ----------
    text
        The page or article as plain text.
    aliases
        The alias table (:func:`load_aliases`).
    headline
        The headline, if known (not part of ``text``).

    Returns
    -------
    list of Mention
        One per security found, by decreasing relevance.
    """
    return _link(article_body(text), headline, aliases)


# ============================================================================ HTML

_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "svg", "title", "iframe",
                        "object"})
_DROP_TAGS = frozenset({"nav", "aside", "footer"})
_DROP_ROLES = frozenset({"navigation", "complementary", "contentinfo", "banner", "search"})
_BLOCK_TAGS = frozenset({
    "p", "div", "br", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article",
    "header", "main", "ul", "ol", "table", "blockquote", "figure", "figcaption", "dd", "dt",
    "hr", "pre", "address", "dl", "li", "form", "fieldset",
})
_VOID_TAGS = frozenset({"br", "hr", "img", "meta", "link", "input", "area", "base", "col",
                        "embed", "source", "track", "wbr"})
_META_PUBLISHED = frozenset({
    "article:published_time", "og:article:published_time", "og:published_time",
    "datepublished", "pubdate", "publishdate", "publish-date", "publish_date", "dc.date",
    "dc.date.issued", "dcterms.created", "dcterms.issued", "article.published",
    "parsely-pub-date", "sailthru.date",
})
_META_UPDATED = frozenset({"article:modified_time", "og:updated_time", "datemodified",
                           "lastmod", "last-modified", "dcterms.modified"})


class _PageParser(HTMLParser):
    """Visible text of a page, plus its title, first <h1> and dated metadata."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self.h1 = ""
        self.og_title = ""
        self.site_name = ""
        self.meta_dates: list[tuple[str, str, str]] = []  # (role, value, label)
        self.time_dates: list[tuple[str, str, str]] = []
        self.ld_json: list[str] = []
        self._skip: list[str] = []
        self._drop: list[list[Any]] = []  # [tag, depth]
        self._li = 0
        self._in_title = False
        self._h1: list[str] | None = None
        self._ld: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "meta":
            self._meta(a)
            return
        if self._drop and tag == self._drop[-1][0]:
            self._drop[-1][1] += 1
        elif (tag in _DROP_TAGS or a.get("role", "").lower() in _DROP_ROLES) \
                and tag not in _VOID_TAGS:
            self._drop.append([tag, 1])
        if tag == "title":
            self._in_title = True
        if tag == "script" and "ld+json" in a.get("type", "").lower():
            self._ld = []
        if tag in _SKIP_TAGS:
            self._skip.append(tag)
        if tag == "li":
            self._li += 1
        if tag == "time" and a.get("datetime"):
            self._time(a)
        if tag == "h1" and self._h1 is None and not self.h1:
            self._h1 = []
        if tag in _BLOCK_TAGS:
            self.parts.append("\n- " if tag == "li" else "\n")
        elif tag in ("td", "th"):
            self.parts.append(" | ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID_TAGS or tag == "meta":
            self.handle_starttag(tag, attrs)
        else:
            self.handle_starttag(tag, attrs)
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._drop and tag == self._drop[-1][0]:
            self._drop[-1][1] -= 1
            if self._drop[-1][1] == 0:
                self._drop.pop()
        if self._skip and tag == self._skip[-1]:
            self._skip.pop()
        if tag == "script" and self._ld is not None:
            self.ld_json.append("".join(self._ld))
            self._ld = None
        if tag == "title":
            self._in_title = False
        if tag == "li" and self._li:
            self._li -= 1
        if tag == "h1" and self._h1 is not None:
            self.h1 = normalize_text("".join(self._h1))
            self._h1 = None
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._ld is not None:
            self._ld.append(data)
            return
        if self._in_title:
            self.title += data
            return
        if self._skip or self._drop:
            return
        if self._h1 is not None:
            self._h1.append(data)
        self.parts.append(data)

    def _meta(self, a: dict[str, str]) -> None:
        key = (a.get("property") or a.get("name") or a.get("itemprop") or "").lower()
        content = a.get("content", "").strip()
        if not content:
            return
        if key in _META_PUBLISHED:
            self.meta_dates.append((_PUBLISHED, content, f'<meta {key}="{content}">'))
        elif key in _META_UPDATED:
            self.meta_dates.append((_UPDATED, content, f'<meta {key}="{content}">'))
        elif key == "og:site_name":
            self.site_name = content
        elif key == "og:title":
            self.og_title = content

    def _time(self, a: dict[str, str]) -> None:
        if self._drop or self._li:
            return  # a time in navigation, a side list or a list of other headlines
        hint = (a.get("itemprop", "") + " " + a.get("class", "")).lower()
        role = _UPDATED if any(w in hint for w in ("modif", "updat")) else _PUBLISHED
        value = a["datetime"].strip()
        self.time_dates.append((role, value, f'<time datetime="{value}">'))

    def text(self) -> str:
        lines = ("".join(self.parts)).splitlines()
        return "\n".join(re.sub(r"[ \t\u00a0]+", " ", ln).strip() for ln in lines)


def _ld_values(data: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(data, dict):
        for k, v in data.items():
            yield k, v
            yield from _ld_values(v)
    elif isinstance(data, list):
        for v in data:
            yield from _ld_values(v)


@dataclass(frozen=True)
class _Page:
    text: str
    headline: str
    publisher: str | None
    structured: tuple[_Candidate, ...]


def _parse_html(markup: str) -> _Page:
    p = _PageParser()
    p.feed(markup)
    p.close()
    dated = list(p.meta_dates)
    publisher = p.site_name or None
    ld_headline = ""
    for block in p.ld_json:
        try:
            data = json.loads(block)
        except ValueError:
            continue
        for key, value in _ld_values(data):
            if key == "datePublished" and isinstance(value, str):
                dated.append((_PUBLISHED, value, f'JSON-LD datePublished "{value}"'))
            elif key == "dateModified" and isinstance(value, str):
                dated.append((_UPDATED, value, f'JSON-LD dateModified "{value}"'))
            elif key == "headline" and isinstance(value, str) and not ld_headline:
                ld_headline = value
            elif (key == "publisher" and isinstance(value, dict)
                  and isinstance(value.get("name"), str) and not publisher):
                publisher = value["name"]
    dated.extend(p.time_dates)
    structured: list[_Candidate] = []
    for role, value, label in dated:
        found = _scan_absolute(value)
        if found:
            f = found[0]
            structured.append(_Candidate(f, role, label, label, None, structured=True))
    headline = (p.h1 or normalize_text(p.og_title) or normalize_text(ld_headline)
                or _clean_headline(normalize_text(p.title), html=True))
    return _Page(p.text(), headline, publisher, tuple(structured))


def _html_to_text(markup: str) -> str:
    p = _PageParser()
    p.feed(markup)
    p.close()
    return normalize_text(p.text())


# ============================================================================ articles

_SUFFIX_SEP_RE = re.compile(r"\s+(?:>|\|)\s+([^>|]{1,30})$")
_SUFFIX_SEP_HTML_RE = re.compile(r"\s+(?:>|\||-|–|—|::)\s+([^>|]{1,30})$")
_PUBLISHER_SHOWN_RE = re.compile(r"([^\s\d][^\s]{0,29})에\s*표출된\s*기사")
_PUBLISHER_COPYRIGHT_RE = re.compile(r"저작권자\s*(?:[ⓒ©]|\(c\))?\s*([^,>\n]{1,40})")
_QUOTED_RE = re.compile(r"['‘\"“]([^'’\"”]{1,30})['’\"”]")


def _clean_headline(line: str, *, html: bool = False) -> str:
    """Drop a trailing " > section | site" from a headline."""
    rx = _SUFFIX_SEP_HTML_RE if html else _SUFFIX_SEP_RE
    while True:
        m = rx.search(line)
        if not m or len(line[:m.start()]) <= len(m.group(1)):
            return line
        line = line[:m.start()].rstrip()


def _plain_headline(lines: Sequence[_Line]) -> tuple[str, int | None]:
    """The headline of a plain-text page and its line (first non-empty line)."""
    for i, ln in enumerate(lines):
        if ln.blank or _NAV_RE.fullmatch(ln.text):
            continue
        marked = [c for c in _text_candidates(ln.text, _layout(ln.text), relative=False)
                  if c.role != _PLAIN]
        if marked or ln.copyright:
            continue  # "이 기사는 2025년 ... 표출된 기사입니다" is not a headline
        if len(ln.text) > 150:
            return "", None  # a paragraph: the page has no headline line
        return _clean_headline(ln.text), i
    return "", None


def _publisher_in(text: str) -> str | None:
    m = _PUBLISHER_SHOWN_RE.search(text)
    if m:
        return m.group(1).strip()
    m = _PUBLISHER_COPYRIGHT_RE.search(text)
    if m:
        name = m.group(1).strip()
        q = _QUOTED_RE.search(name)
        return (q.group(1) if q else name).strip() or None
    return None


def parse_article(
    text: str,
    *,
    source: str,
    html: bool = False,
    publisher: str | None = None,
    publisher_tz: str | None = None,
    reference_time: datetime | None = None,
    aliases: AliasTable | None = None,
) -> Article:
    """Turn a page into an article: headline, publisher, time, securities, hash.

    Parameters
    ----------
    text
        The page: plain text, or HTML when ``html`` is True (tags stripped with the
        standard library's parser; scripts, styles, ``<nav>``, ``<aside>`` and
        ``<footer>`` dropped; ``<meta property="article:published_time">``,
        JSON-LD ``datePublished`` and ``<time datetime>`` read as publication
        markers; the headline is the first ``<h1>``, else ``og:title``, else
        ``<title>``).
    source
        Where it came from (URL or file name), kept as given.
    html
        Whether ``text`` is HTML.
    publisher
        The publisher; default: the one stated on the page (``... thebell에 표출된
        기사``, ``저작권자 ⓒ ...``, ``og:site_name``), else None.
    publisher_tz
        The publisher's IANA zone, used when the page writes no zone.
    reference_time
        When the page was fetched (aware), to resolve relative times.
    aliases
        The alias table; default :func:`load_aliases` (``events/aliases.csv``).

    Returns
    -------
    Article

    Raises
    ------
    InputError
        The text is empty, or a parameter is invalid.
    """
    if not text.strip():
        raise InputError(f"{source}: the article is empty")
    if html:
        page = _parse_html(text)
        plain, headline, structured = page.text, page.headline, page.structured
        found_publisher = page.publisher
        drop = {normalize_text(headline)} if headline else set()
    else:
        plain, structured = text, ()
        headline, line = _plain_headline(_classify(text))
        found_publisher = None
        drop = set()
        if line is not None:
            drop = {normalize_text(text.splitlines()[line]), normalize_text(headline)}
    if not plain.strip():
        raise InputError(f"{source}: the page has no text")
    time = _find_time(plain, publisher_tz, reference_time, structured)
    body = article_body("\n".join(ln for ln in plain.splitlines()
                                  if not drop or normalize_text(ln) not in drop))
    table = aliases if aliases is not None else load_aliases()
    mentions = _link(body, headline, table)
    normalized = normalize_text(body)
    return Article(
        source=source,
        headline=headline,
        publisher=publisher or found_publisher or _publisher_in(plain),
        time=time,
        mentions=tuple(mentions),
        body_hash=hashlib.sha256(normalized.encode("utf-8")).hexdigest(),
        text_length=len(normalized),
        body=body,
    )


# ============================================================================ feeds

_HAS_ZONE_RE = re.compile(r"(?:Z|[+\-]\d{2}:?\d{2}|GMT|UTC|UT|[ECMP][SD]T)\s*$")


def _feed_date(entry: Any, key: str, label: str, warnings: list[str]) -> datetime | None:
    raw = dict.get(entry, key)  # not entry.get: feedparser maps "updated" to "published"
    if not raw or not isinstance(raw, str):
        return None
    found = _scan_absolute(raw)
    if found and found[0].has_time and found[0].zone is not None:
        c = _Candidate(found[0], _PUBLISHED, raw, raw, None)
        ts = _resolve(c, None, None).ts
        return ts.astimezone(UTC) if ts else None
    if found:
        what = "no time of day" if not found[0].has_time else "no time zone"
        warnings.append(f"{label}: {key} date '{raw}' has {what}; left empty")
        return None
    parsed = dict.get(entry, f"{key}_parsed")
    if parsed and _HAS_ZONE_RE.search(raw):
        y, mo, d, h, mi, s = (int(v) for v in parsed[:6])
        return datetime(y, mo, d, h, mi, s, tzinfo=UTC)
    warnings.append(f"{label}: {key} date '{raw}' could not be read; left empty")
    return None


def parse_feed(content: bytes | str) -> FeedItems:
    """The entries of an RSS or Atom feed (read with feedparser; never fetches).

    Titles are kept as given (text: escape them when rendering); summaries are
    turned into plain text. Dates are read with their written zone (feedparser
    alone reads ``KST`` and zone-less dates as UTC): a date without a zone is left
    empty, with a warning.

    Parameters
    ----------
    content
        The feed document (bytes as fetched, or text).

    Returns
    -------
    FeedItems
        A list of :class:`FeedItem`, with ``warnings`` for recoverable problems
        (e.g. a feed that is not well-formed XML but whose entries were read).

    Raises
    ------
    InputError
        The content is empty, not a feed, or so broken that no entry can be read.
    """
    import feedparser  # type: ignore[import-untyped]

    if isinstance(content, str):
        data = content.encode("utf-8")
        headers = {"content-type": "application/xml; charset=utf-8"}
    else:
        data, headers = bytes(content), {}
    if not data.strip():
        raise InputError("the feed is empty: expected an RSS or Atom document")
    # A stream, never a string: feedparser fetches strings that look like URLs.
    d = feedparser.parse(io.BytesIO(data), sanitize_html=False, resolve_relative_uris=False,
                         response_headers=headers)
    entries = list(d.get("entries", []))
    version = d.get("version") or ""
    problem = d.get("bozo_exception")
    if not entries and d.get("bozo"):
        raise InputError(f"not a readable RSS or Atom feed ({problem}); check that the "
                         "URL returns a feed, not an HTML page or an error")
    if not entries and not version:
        raise InputError("not an RSS or Atom feed (no <rss>, <feed> or <rdf:RDF> root); "
                         "check that the URL returns a feed")
    warnings: list[str] = []
    if d.get("bozo"):
        warnings.append(f"the feed is not well-formed ({problem}); {len(entries)} entries "
                        "were read anyway, some may be missing or cut")
    items: list[FeedItem] = []
    for n, e in enumerate(entries, start=1):
        title = str(e.get("title", ""))
        label = f"entry {n} ('{title[:40]}')"
        detail = e.get("summary_detail") or {}
        summary = str(e.get("summary", ""))
        if "html" in str(detail.get("type", "text/html")):
            summary = _html_to_text(summary)
        items.append(FeedItem(
            title=title,
            link=e.get("link") or None,
            published=_feed_date(e, "published", label, warnings),
            summary=normalize_text(summary),
            id=e.get("id") or None,
            updated=_feed_date(e, "updated", label, warnings),
        ))
    return FeedItems(items, warnings)
