"""NATURAL PLAN calendar scheduling: text -> meeting request -> slot, by the product's own code.

Run by hand:  .venv/bin/python bench/natural_plan.py [--data PATH] [--show N]

Each task's English prompt (its last TASK) is read by the product's extraction,
``assistant.scheduling.text.extract_meeting``, the same code that reads requests to meet
in mail: participants, duration, work hours, days, busy blocks, preferences ("would
rather not meet on Monday after 15:00" as a hard rule: the meeting ends by 15:00), and
"earliest availability". ``MeetingText.to_request`` turns it into the engine's input for
one fixed week (Monday 2026-11-23, zone UTC). Nothing here parses the prompts.

Two solvers are scored on the same extracted constraints, side by side:
- the engine (``find_slots``), best slot;
- the baseline: the earliest slot on a 15-minute grid that passes the checker below
  (brute force, a dozen lines): what any earliest-first search achieves.

Scoring as published: the first "Day, H:MM - H:MM" of the answer and of golden_plan; exact
when day, start and end agree. "valid" re-checks the proposed slot against the extracted
constraints with the checker written here, independent of the engine. "read" counts tasks
where the extraction left no sentence unread (boilerplate sentences excluded) and found
every participant's schedule. Gemini 1.5 Pro's stored 5-shot answers (pred_5shot_pro, 673
tasks) are scored the same way. What matters here is the extraction: on this data the
engine and the baseline both pick the earliest valid slot, so their figures should match,
and the gap to 100% is extraction (and gold answers that are not the earliest valid slot).

The last line printed is machine-readable:
natural_plan exact=<percent> valid=<percent> baseline_exact=<percent> read=<percent> ...
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time as clock
from datetime import date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant.scheduling import find_slots  # noqa: E402
from assistant.scheduling.text import MeetingText, extract_meeting  # noqa: E402

DEFAULT_DATA = (ROOT / "../shared/data/scheduling/natural_plan_calendar.json").resolve()
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
WEEK = date(2026, 11, 23)  # an arbitrary Monday
DAY_RE = "|".join(DAYS)
SLOT_RE = re.compile(rf"({DAY_RE}), (\d{{1,2}}):(\d{{2}}) - (\d{{1,2}}):(\d{{2}})")
# Sentences of the prompt that state nothing about the meeting.
BOILERPLATE = re.compile(
    r"^(?:Here are the existing schedules|Find a time that works|You need to schedule)"
)


def task_text(prompt: str) -> str:
    """The last TASK of a prompt (the few-shot examples before it are not this task)."""
    return prompt[prompt.rfind("TASK:") + len("TASK:") :].split("SOLUTION:")[0]


def fully_read(meeting: MeetingText) -> bool:
    unread = [s for s in meeting.unread if not BOILERPLATE.match(s)]
    return not unread and bool(meeting.names) and meeting.duration_minutes is not None


def _m(value: object) -> int:
    return value.hour * 60 + value.minute  # type: ignore[attr-defined]


def slot_text(start: datetime, end: datetime) -> str:
    """Engine slot back to the dataset's answer format."""
    return f"{DAYS[start.weekday()]}, {start.hour}:{start.minute:02d} - {end.hour}:{end.minute:02d}"


def first_slot(answer: str | None) -> tuple[int, int, int] | None:
    """The first "Day, H:MM - H:MM" of an answer as (day, start, end) minutes."""
    match = SLOT_RE.search(answer or "")
    if match is None:
        return None
    day, h1, m1, h2, m2 = match.groups()
    return (DAYS.index(day), int(h1) * 60 + int(m1), int(h2) * 60 + int(m2))


def valid(meeting: MeetingText, slot: tuple[int, int, int] | None) -> bool:
    """Independent check of a slot against every extracted constraint (not the engine)."""
    if slot is None:
        return False
    day, start, end = slot
    days = meeting.days or [0, 1, 2, 3, 4]
    work = meeting.work_hours
    if day not in days or end - start != (meeting.duration_minutes or 30):
        return False
    if work is not None and (start < _m(work[0]) or end > _m(work[1])):
        return False
    for blocks in meeting.busy.values():
        if any(d == day and start < _m(b) and end > _m(a) for d, a, b in blocks):
            return False
    for _, a_day, kind, at in meeting.avoid:
        if a_day != day:
            continue
        if kind is None or at is None:
            return False
        if kind == "before" and start < _m(at):
            return False
        if kind == "after" and end > _m(at):
            return False
    return True


def brute_earliest(meeting: MeetingText) -> tuple[int, int, int] | None:
    """The baseline: earliest valid slot on a 15-minute grid, by the independent checker."""
    work = meeting.work_hours
    first, last = (_m(work[0]), _m(work[1])) if work else (9 * 60, 17 * 60)
    duration = meeting.duration_minutes or 30
    for day in sorted(meeting.days or [0, 1, 2, 3, 4]):
        for start in range(first, last - duration + 1, 15):
            slot = (day, start, start + duration)
            if valid(meeting, slot):
                return slot
    return None


def pct(num: int, den: int) -> str:
    return f"{100.0 * num / den:.1f}" if den else "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--show", type=int, default=0, help="print up to N exact-match misses")
    args = parser.parse_args(argv)
    records = json.loads(args.data.read_text())

    exact = ok = gold_ok = gold_earliest = read = 0
    b_exact = b_ok = 0
    g_total = g_exact = g_valid = 0
    timings: list[float] = []
    extract_ms: list[float] = []
    baseline_ms: list[float] = []
    misses: list[str] = []
    for key, record in records.items():
        t0 = clock.perf_counter()
        meeting = extract_meeting(task_text(record["prompt_0shot"]))
        request = meeting.to_request(WEEK)
        extract_ms.append((clock.perf_counter() - t0) * 1000)
        read += fully_read(meeting)
        gold = first_slot(record["golden_plan"])
        gold_ok += valid(meeting, gold)
        t0 = clock.perf_counter()
        baseline = brute_earliest(meeting)
        baseline_ms.append((clock.perf_counter() - t0) * 1000)
        gold_earliest += baseline == gold
        b_exact += baseline is not None and baseline == gold
        b_ok += valid(meeting, baseline)
        t0 = clock.perf_counter()
        result = find_slots(request)
        timings.append((clock.perf_counter() - t0) * 1000)
        answer = slot_text(result.slots[0].start, result.slots[0].end) if result.slots else ""
        mine = first_slot(answer)
        exact += mine is not None and mine == gold
        ok += valid(meeting, mine)
        if mine != gold and len(misses) < args.show:
            misses.append(f"{key}: engine {answer!r} gold {record['golden_plan'].strip()!r}")
        pred = record.get("pred_5shot_pro")
        if pred is not None:
            g_total += 1
            g_exact += first_slot(pred) == gold
            g_valid += valid(meeting, first_slot(pred))

    n = len(records)
    median = statistics.median(timings)
    p99 = statistics.quantiles(timings, n=100)[98]
    b_median = statistics.median(baseline_ms)
    rows = [
        ("engine (find_slots)", n, pct(exact, n), pct(ok, n), f"{median:.3f}", f"{p99:.3f}"),
        ("baseline: brute-force earliest", n, pct(b_exact, n), pct(b_ok, n), f"{b_median:.3f}", ""),
        ("gemini-1.5-pro 5-shot", g_total, pct(g_exact, g_total), pct(g_valid, g_total), "", ""),
    ]
    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="NATURAL PLAN calendar scheduling")
        for col in ("solver", "tasks", "exact %", "valid %", "median ms", "p99 ms"):
            table.add_column(col, justify="left" if col == "solver" else "right")
        for row in rows:
            table.add_row(*(str(c) for c in row))
        Console().print(table)
    except ImportError:  # plain text keeps the bench runnable without rich
        for row in rows:
            print(" | ".join(str(c) for c in row))
    print(
        f"extraction (product code, text -> request): {pct(read, n)}% of prompts read in full; "
        f"median {statistics.median(extract_ms):.3f} ms per prompt"
    )
    print(f"gold answers valid under the extracted constraints: {pct(gold_ok, n)}%")
    print(
        f"gold answer is the earliest valid slot: {gold_earliest}/{n} tasks "
        "(the ceiling for any earliest-first solver)"
    )
    for line in misses:
        print(line)
    print(
        f"natural_plan exact={pct(exact, n)} valid={pct(ok, n)} baseline_exact={pct(b_exact, n)} "
        f"baseline_valid={pct(b_ok, n)} read={pct(read, n)} median_ms={median:.3f} "
        f"gemini_exact={pct(g_exact, g_total)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
