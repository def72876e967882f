"""Requests to meet, read from mail text: detection, and extraction into a SchedulingRequest.

People ask to meet in words ("can we meet Tuesday at 3?", "I'm busy Monday 9-10; Ana
can't do Friday after 15:00"). This module finds such requests and reads what they
state: who, how long, which days and hours, who is busy when, who will not meet when,
and whether the earliest time is wanted. What it cannot read it leaves out (None or
empty) rather than guess; callers fill the gaps from calendars and defaults.

Times without am/pm are read as business hours: 1 to 7 are afternoon, 8 to 12 morning,
because "at 3" in a work mail is 15:00 far more often than 03:00.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from assistant.scheduling.models import (
    BusyInterval,
    DailyWindow,
    Participant,
    SchedulingRequest,
    TimeRule,
)

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY = r"(?:mon|tues|tue|wednes|wed|thurs|thu|fri|satur|sat|sun)(?:day)?"
_DAY_WORD = re.compile(r"\b(" + _DAY + r")\b", re.IGNORECASE)
_CLOCK = (
    r"(?:\d{1,2}(?::\d{2})?\s*(?:am|pm|a\.m\.|p\.m\.)|\d{1,2}:\d{2}|\d{1,2}\.\d{2}"
    r"|noon|midday)"
)
_BARE_HOUR = r"\d{1,2}"
CLOCK = re.compile(r"\b" + _CLOCK + r"(?![\w:])", re.IGNORECASE)
# "9:00 to 9:30", "9-10am", "from 2pm until 4pm", "between 10 and 11:30"
RANGE = re.compile(
    r"(?:\bfrom\s+|\bbetween\s+)?\b(?P<a>" + _CLOCK + "|" + _BARE_HOUR + r")\s*"
    r"(?:-|\u2013|to|until|till|and)\s*(?P<b>" + _CLOCK + "|" + _BARE_HOUR + r")(?![\w:])",
    re.IGNORECASE,
)
AT_TIME = re.compile(r"(?:\b(?:at|around|about)|@)\s*(?P<t>" + _CLOCK + "|" + _BARE_HOUR + r")\b")
DURATION = re.compile(
    r"\b(?:(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>minutes?|mins?|hours?|hrs?|h)\b"
    r"|(?P<word>half an hour|half-hour|half hour|quarter of an hour|an hour and a half"
    r"|one and a half hours?|an hour|one hour|two hours|three hours|thirty minutes"
    r"|fifteen minutes|forty-five minutes|forty five minutes)\b)",
    re.IGNORECASE,
)
_WORD_MINUTES = {
    "half an hour": 30,
    "half-hour": 30,
    "half hour": 30,
    "quarter of an hour": 15,
    "an hour and a half": 90,
    "one and a half hour": 90,
    "one and a half hours": 90,
    "an hour": 60,
    "one hour": 60,
    "two hours": 120,
    "three hours": 180,
    "thirty minutes": 30,
    "fifteen minutes": 15,
    "forty-five minutes": 45,
    "forty five minutes": 45,
}
# Words for getting together, in person or not.
MEET = re.compile(
    r"\b(?:meet(?:ing|ings|up)?|call|catch[- ]up|sync|get together|chat|coffee|lunch|"
    r"breakfast|dinner|conference call|phone call|video call|zoom|teams call|sit down|"
    r"get on the phone|talk|discuss(?:ion)?|appointment|walk ?through|review session)\b",
    re.IGNORECASE,
)
# A sentence that asks the reader for something or proposes something.
REQUEST = re.compile(
    r"\b(?:can|could|would|will|shall) (?:you|we|u)\b"
    r"|\b(?:are|r) you (?:free|available|around|able)\b"
    r"|\bdo you have (?:time|a (?:minute|moment|few minutes)|some time|availability)\b"
    r"|\b(?:does|would|will|do(?:es)?) (?:\w+ ){0,4}(?:work|suit)(?: for (?:you|everyone|all))?\b"
    r"|\b(?:how|what) about\b"
    r"|\blet'?s\b|\blet us\b"
    r"|\bi (?:suggest|propose|recommend)\b|\bmay i suggest\b"
    r"|\b(?:i|we)(?:'d| would) like (?:to|you to)\b"
    r"|\bplease\b"
    r"|\blet me know\b|\bget back to me\b|\badvise\b"
    r"|\bwhen (?:are|is|would|will|could|can) (?:you|we|it|everyone)\b"
    r"|\bi need (?:you|to (?:meet|talk|see|speak|discuss))\b"
    r"|\bwe (?:need|should|could|might want) to\b"
    r"|\b(?:maybe|perhaps)\b"
    r"|\b(?:is|would be|sounds|looks) (?:great|good|fine|perfect|better|ok|okay)\b"
    r"|\bworks? (?:for|with) me\b"
    r"|\b(?:i(?:'m| am)|we(?:'re| are)) (?:free|available|booked|busy|open)\b"
    r"|\bnot? (?:look|looks|work|works) (?:good|well)? ?for me\b"
    r"|\bdoes not look good\b",
    re.IGNORECASE,
)
EARLIEST = re.compile(
    r"\bearli?e?st (?:availability|possible|convenience|opportunity|slot|time)\b"
    r"|\bas soon as possible\b|\basap\b|\bat the earliest\b",
    re.IGNORECASE,
)
_RELATIVE = re.compile(r"\b(today|tomorrow|this week|next week)\b", re.IGNORECASE)
# Zone words in business mail, to IANA names. "ET" and friends follow daylight saving.
ZONES = {
    "utc": "UTC",
    "gmt": "UTC",
    "cet": "Europe/Berlin",
    "cest": "Europe/Berlin",
    "bst": "Europe/London",
    "uk time": "Europe/London",
    "london time": "Europe/London",
    "et": "America/New_York",
    "est": "America/New_York",
    "edt": "America/New_York",
    "eastern time": "America/New_York",
    "new york time": "America/New_York",
    "ct": "America/Chicago",
    "cst": "America/Chicago",
    "cdt": "America/Chicago",
    "central time": "America/Chicago",
    "houston time": "America/Chicago",
    "pt": "America/Los_Angeles",
    "pst": "America/Los_Angeles",
    "pdt": "America/Los_Angeles",
    "pacific time": "America/Los_Angeles",
}
ZONE = re.compile(
    r"\b(" + "|".join(sorted((re.escape(z) for z in ZONES), key=len, reverse=True)) + r")\b"
    r"(?: time)?",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"(?<=[.?!;])\s+|\n+")
_NAMES = r"(?P<names>(?:[A-Z][\w'-]+)(?:(?:,\s*|,?\s+and\s+)[A-Z][\w'-]+)*)"
# A name, or I / We ("I'm busy": the apostrophe ends the word).
_PERSON = r"(?P<who>[A-Z][\w-]*)"
BUSY = re.compile(
    _PERSON + r"(?:'m|'re|\s+am|\s+are|\s+is|\s+has|\s+have)?\s+(?:got\s+)?"
    r"(?:busy|booked|meetings|blocked (?:their|his|her|my|our) calendar|tied up|"
    r"in meetings|unavailable|not available|out)\b(?P<rest>.*)$"
)
AVOID = re.compile(
    _PERSON + r"(?:'d|\s+would|\s+do|\s+does|\s+can|\s+could)?\s*"
    r"(?:rather not meet|not want to meet|(?:n't|not|\s*not) (?:meet|do|make it)|"
    r"like to avoid (?:more )?meetings|prefers? not to meet|cannot (?:meet|do|make it)|"
    r"can'?t (?:meet|do|make it))\s+"
    r"(?P<rest>.+)$"
)
CLAUSE = re.compile(
    r"^(?:on\s+)?(?P<day>" + _DAY + r")(?:\s+(?P<kind>before|after)\s+(?P<at>" + _CLOCK + "|"
    r"\d{1,2}))?$",
    re.IGNORECASE,
)
HEAD = re.compile(
    r"(?i:schedule|set up|arrange|book|find (?:a )?time for) (?:a |an )?"
    r"(?:meeting|call|session)?\s*(?:for|with|between) " + _NAMES,
)
WORK_HOURS = re.compile(
    r"\b(?:work(?:ing)? hours|business hours|office hours)\s+(?:of\s+)?(?P<a>"
    + _CLOCK
    + r")\s*(?:to|-|\u2013|until|and)\s*(?P<b>"
    + _CLOCK
    + r")",
    re.IGNORECASE,
)
FREE = re.compile(
    _PERSON + r"(?:'s calendar is wide open|\s*has no meetings|\s+is free|'m free|\s+am free)"
    r" the (?:entire|whole) (?:day|week)"
)


def _day_index(word: str) -> int:
    word = word.lower()
    for index, name in enumerate(DAYS):
        if name.startswith(word[:3]):
            return index
    raise ValueError(word)


def parse_clock(text: str) -> time | None:
    """'3pm' -> 15:00, '9:30' -> 09:30, '3' -> 15:00 (business hours), 'noon' -> 12:00."""
    text = text.strip().lower().replace(".", ":") if ":" not in text else text.strip().lower()
    if text in ("noon", "midday"):
        return time(12, 0)
    match = re.fullmatch(r"(\d{1,2})(?::(\d{2}))?\s*(am|pm|a:m:|p:m:|a\.m\.|p\.m\.)?", text)
    if match is None:
        return None
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    suffix = (match.group(3) or "").replace(".", "").replace(":", "")
    if hour > 23 or minute > 59:
        return None
    if suffix == "pm" and hour < 12:
        hour += 12
    elif suffix == "am" and hour == 12:
        hour = 0
    elif not suffix and match.group(2) is None and 1 <= hour <= 7:
        hour += 12
    return time(hour, minute)


def _range(match: re.Match[str]) -> tuple[time, time] | None:
    a_text, b_text = match.group("a"), match.group("b")
    b = parse_clock(b_text)
    if b is None:
        return None
    # "9-10am", "2-4pm": the first bound takes the second one's half of the day.
    suffix = re.search(r"(am|pm|a\.m\.|p\.m\.)\s*$", b_text, re.IGNORECASE)
    if suffix and not re.search(r"[ap]\.?m\.?|:", a_text, re.IGNORECASE):
        a = parse_clock(f"{a_text}{suffix.group(1)}")
    else:
        a = parse_clock(a_text)
    if a is None or a >= b:
        return None
    # Bare numbers that are not a range of hours ("between 2 and 3 people") are no time.
    bare = re.fullmatch(r"\d{1,2}", a_text) and re.fullmatch(r"\d{1,2}", b_text)
    said_range = match.group(0).lower().startswith(("from", "between")) or "-" in match.group(0)
    if bare and not said_range:
        return None
    return a, b


def _minutes(value: time) -> int:
    return value.hour * 60 + value.minute


def parse_duration(text: str) -> int | None:
    """The first duration written in ``text``, in minutes."""
    match = DURATION.search(text)
    if match is None:
        return None
    if match.group("word"):
        return _WORD_MINUTES[match.group("word").lower()]
    amount = float(match.group("num"))
    unit = match.group("unit").lower()
    minutes = amount * 60 if unit.startswith("h") else amount
    return int(minutes) if 5 <= minutes <= 600 else None


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s and s.strip()]


def is_request(sentence: str) -> bool:
    """The sentence asks the reader for something or proposes something."""
    return REQUEST.search(sentence) is not None or sentence.rstrip().endswith("?")


def _has_when(sentence: str) -> bool:
    return bool(
        _DAY_WORD.search(sentence)
        or CLOCK.search(sentence)
        or _RELATIVE.search(sentence)
        or AT_TIME.search(sentence)
    )


@dataclass(frozen=True)
class DetectedRequest:
    """A request to meet found in a mail: the sentence, and what it states."""

    sentence: str
    confident: bool  # asks to meet and says when
    duration_minutes: int | None
    window_start: datetime | None
    window_end: datetime | None
    timezone: str
    window_description: str | None

    @property
    def evidence(self) -> str:
        text = " ".join(self.sentence.split())
        return repr(text if len(text) <= 120 else text[:119] + "…")


def detect_meeting_request(
    subject: str, body: str, *, timezone: str = "UTC", sent: datetime | None = None
) -> DetectedRequest | None:
    """The first sentence of ``subject`` or ``body`` that asks or proposes to meet.

    Confident when the sentence asks or proposes, names a way of meeting and says when
    (a day, a time, today, tomorrow, this or next week). ``sent`` anchors weekdays and
    relative days (the next such day on or after it); ``timezone`` is the reader's.
    """
    candidates = [subject, *sentences(body[:4000])]
    best: DetectedRequest | None = None
    for sentence in candidates:
        if not sentence or MEET.search(sentence) is None or not is_request(sentence):
            continue
        when = _has_when(sentence)
        zone_match = ZONE.search(sentence)
        zone = ZONES[zone_match.group(1).lower()] if zone_match else timezone
        start, end, described = _window(sentence, zone, sent)
        found = DetectedRequest(
            sentence=sentence,
            confident=when,
            duration_minutes=parse_duration(sentence),
            window_start=start,
            window_end=end,
            timezone=zone,
            window_description=described,
        )
        if when:
            return found
        best = best or found
    return best


def _window(
    sentence: str, zone: str, sent: datetime | None
) -> tuple[datetime | None, datetime | None, str | None]:
    """The day (and hours) a sentence names, resolved from ``sent`` in ``zone``."""
    tz = ZoneInfo(zone)
    anchor = (sent.astimezone(tz) if sent else datetime.now(tz)).date()
    day: date | None = None
    last: date | None = None
    described = None
    relative = _RELATIVE.search(sentence)
    weekday = _DAY_WORD.search(sentence)
    if weekday:
        target = _day_index(weekday.group(1))
        ahead = (target - anchor.weekday()) % 7
        if re.search(r"\bnext\s+" + re.escape(weekday.group(1)), sentence, re.IGNORECASE):
            ahead = ahead or 7
        day = anchor + timedelta(days=ahead)
        described = weekday.group(0)
    elif relative:
        word = relative.group(1).lower()
        described = relative.group(0)
        if word == "today":
            day = anchor
        elif word == "tomorrow":
            day = anchor + timedelta(days=1)
        elif word == "this week":
            day, last = anchor, anchor + timedelta(days=max(4 - anchor.weekday(), 0))
        else:
            monday = anchor + timedelta(days=7 - anchor.weekday())
            day, last = monday, monday + timedelta(days=4)
    if day is None:
        return None, None, None
    last = last or day
    span = RANGE.search(sentence)
    hours = _range(span) if span else None
    at = AT_TIME.search(sentence) or CLOCK.search(sentence)
    if hours is not None:
        start_t, end_t = hours
    elif at is not None and (
        clock := parse_clock(at.group("t") if "t" in at.groupdict() else at.group(0))
    ):
        start_t, end_t = clock, None
    else:
        start_t, end_t = time(0, 0), None
    start = datetime.combine(day, start_t, tz)
    end = (
        datetime.combine(last, end_t, tz)
        if end_t is not None
        else datetime.combine(last + timedelta(days=1), time(0, 0), tz)
    )
    return start, end, described


# --------------------------------------------------------------------------- extraction


@dataclass
class MeetingText:
    """What a text states about a meeting to arrange. Day numbers: 0 = Monday."""

    names: list[str] = field(default_factory=list)
    duration_minutes: int | None = None
    work_hours: tuple[time, time] | None = None
    days: list[int] = field(default_factory=list)
    busy: dict[str, list[tuple[int, time, time]]] = field(default_factory=dict)
    avoid: list[tuple[str, int, str | None, time | None]] = field(default_factory=list)
    earliest: bool = False
    unread: list[str] = field(default_factory=list)  # sentences that stated nothing known

    def to_request(
        self,
        week_start: date,
        *,
        timezone: str = "UTC",
        address_of: dict[str, str] | None = None,
        default_duration: int = 30,
        default_hours: tuple[time, time] = (time(9, 0), time(17, 0)),
        hard_preferences: bool = True,
    ) -> SchedulingRequest:
        """The engine's input for the week starting ``week_start`` (a Monday)."""
        tz = ZoneInfo(timezone)
        hours = self.work_hours or default_hours
        window = [DailyWindow(days=(0, 1, 2, 3, 4), start=hours[0], end=hours[1])]
        names = self.names or sorted(self.busy)
        addresses = address_of or {}

        def instant(day: int, at: time) -> datetime:
            return datetime.combine(week_start + timedelta(days=day), at, tz)

        participants = []
        for name in names:
            rules = [
                TimeRule(
                    weekdays=(day,),
                    not_before=at if kind == "before" else None,
                    not_after=at if kind == "after" else None,
                    hard=hard_preferences,
                )
                for who, day, kind, at in self.avoid
                if who == name
            ]
            busy = [
                BusyInterval(start=instant(day, a), end=instant(day, b))
                for day, a, b in self.busy.get(name, [])
            ]
            participants.append(
                Participant(
                    address=addresses.get(name, f"{name.lower()}@unknown.invalid"),
                    name=name,
                    timezone=timezone,
                    working_hours=window,
                    busy=busy,
                    rules=rules,
                )
            )
        days = self.days or [0, 1, 2, 3, 4]
        first, last = min(days), max(days)
        skipped = tuple(d for d in range(first, last + 1) if d not in days)
        return SchedulingRequest(
            participants=participants,
            duration=self.duration_minutes or default_duration,
            window_start=instant(first, time(0, 0)),
            window_end=instant(last, time(0, 0)) + timedelta(days=1),
            timezone=timezone,
            rules=[TimeRule(weekdays=skipped, hard=True)] if skipped else [],
            max_results=1,
        )


def _days_in(text: str) -> list[int]:
    return sorted({_day_index(m.group(1)) for m in _DAY_WORD.finditer(text)})


def _blocks(rest: str) -> list[tuple[int, time, time]]:
    """'on Monday during 9:00 to 9:30, 10:00 to 11:00, Tuesday 2-3pm' -> day blocks."""
    found = []
    marks = list(_DAY_WORD.finditer(rest))
    for index, mark in enumerate(marks):
        end = marks[index + 1].start() if index + 1 < len(marks) else len(rest)
        day = _day_index(mark.group(1))
        for span in RANGE.finditer(rest[mark.end() : end]):
            hours = _range(span)
            if hours is not None:
                found.append((day, *hours))
    return found


def extract_meeting(text: str, *, sender_name: str = "I") -> MeetingText:
    """Read participants, duration, hours, days, busy blocks, preferences from ``text``.

    "I" / "We" in a statement stand for ``sender_name``.
    """
    found = MeetingText()
    last_subject: str | None = None
    for sentence in sentences(text):
        plain = sentence.rstrip(".;").strip()
        head = HEAD.search(plain)
        if head is not None:
            names = re.split(r",\s*and\s+|,\s*|\s+and\s+", head.group("names"))
            found.names = [n for n in (x.strip() for x in names) if n]
            if re.search(r"\b(?:me|myself|us)\b", plain[head.start() :]):
                found.names.append(sender_name)
            found.duration_minutes = parse_duration(plain[head.end() :]) or found.duration_minutes
            hours = WORK_HOURS.search(plain)
            if hours:
                a, b = parse_clock(hours.group("a")), parse_clock(hours.group("b"))
                if a is not None and b is not None and a < b:
                    found.work_hours = (a, b)
                found.days = _days_in(plain[hours.end() :]) or found.days
            else:
                found.days = _days_in(plain[head.end() :]) or found.days
            continue
        if EARLIEST.search(plain):
            found.earliest = True
            continue
        if FREE.search(plain):
            continue
        busy = BUSY.match(plain)
        if busy is not None and (blocks := _blocks(busy.group("rest"))):
            who = _who(busy.group("who"), sender_name)
            found.busy.setdefault(who, []).extend(blocks)
            continue
        avoid = AVOID.match(plain)
        clause = None
        if avoid is not None:
            last_subject = _who(avoid.group("who"), sender_name)
            clause = CLAUSE.match(avoid.group("rest").strip())
        elif last_subject is not None:
            clause = CLAUSE.match(plain)  # "Tuesday before 14:30." goes on the last one
        if clause is not None and last_subject is not None:
            at = parse_clock(clause.group("at")) if clause.group("at") else None
            kind = clause.group("kind").lower() if clause.group("kind") else None
            found.avoid.append((last_subject, _day_index(clause.group("day")), kind, at))
            continue
        if found.duration_minutes is None and (minutes := parse_duration(plain)):
            found.duration_minutes = minutes
            continue
        found.unread.append(plain)
    return found


def _who(word: str, sender_name: str) -> str:
    return sender_name if word in ("I", "We") else word
