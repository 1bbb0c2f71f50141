"""Working days in each UK nation, the deadline clock and the published chaser schedule.

Pure Python: no Flask, no database. Everything takes and returns `datetime.date`
(calendar days in the UK); turn a timezone-aware timestamp into one with
`uk_date()` first, so a letter delivered at 00:30 BST counts from the right day.

The rules, as the issue (#6, §5 and §6) states them and the published schedule
page repeats them:

- A working day is a Monday to Friday that is not a bank holiday of the
  recipient's nation (`web.recipients.models.Nation`). Bank holidays come from
  the `holidays` package, substitute days included (Boxing Day 2026 is a
  Saturday, so Monday 28 December 2026 is the holiday). England and Wales share
  one calendar; we ask `holidays` for subdivision "ENG" (its "WLS" calendar is
  identical, and tests check that).
- The clock starts the day after delivery: the first working day after the
  delivery date is day 1, whatever time of day the letter arrived. Day N is the
  N-th working day after delivery; on a weekend or bank holiday the clock shows
  the number of the last working day before it.
- A target of T working days is met by the end of day T (`due_on`). From the
  next working day the letter is overdue by 1, and so on.
- Chasers (reminders) follow `CHASER_SCHEDULE`: the first on the first working
  day after the reply deadline (day T + 1), the second 10 working days after
  the first, the third 10 working days after the second and only to the
  recipient's escalation contact, if they have one. At most three; none after
  any response; none while the organiser has paused them; and only ever on a
  working day, so no official is chased on a weekend or a bank holiday.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays

UK_TIME = ZoneInfo("Europe/London")

# `web.recipients.models.Nation` values -> the `holidays` package's GB subdivisions.
# Kept as plain strings so this module needs no SQLAlchemy import; a test checks
# that every Nation member is covered.
_SUBDIVISIONS: dict[str, str] = {
    "england-and-wales": "ENG",
    "scotland": "SCT",
    "northern-ireland": "NIR",
}

NATION_NAMES: dict[str, str] = {
    "england-and-wales": "England and Wales",
    "scotland": "Scotland",
    "northern-ireland": "Northern Ireland",
}

DEFAULT_ACKNOWLEDGEMENT_TARGET = 5
DEFAULT_REPLY_TARGET = 20
CHASER_INTERVAL_WORKING_DAYS = 10
MAX_CHASERS = 3


def _subdivision(nation: str) -> str:
    try:
        return _SUBDIVISIONS[str(nation)]
    except KeyError:
        known = ", ".join(f'"{name}"' for name in _SUBDIVISIONS)
        raise ValueError(
            f'Unknown nation "{nation}": working days are known for {known}.'
        ) from None


@functools.lru_cache(maxsize=256)
def _bank_holidays(nation: str, year: int) -> frozenset[date]:
    """The bank holidays (substitute days included) of `nation` in `year`."""
    calendar = holidays.country_holidays("GB", subdiv=_subdivision(nation), years=year)
    return frozenset(day for day in calendar if day.year == year)


def _check_day(value: date, name: str) -> None:
    # datetime is a subclass of date; a timestamp here is a bug (which UK day is it?).
    if isinstance(value, datetime) or not isinstance(value, date):
        raise TypeError(f"{name} must be a date (use uk_date() for a timestamp), not {value!r}")


def uk_date(moment: datetime) -> date:
    """The calendar day in the UK (Europe/London) at the timezone-aware `moment`.

    Raises ValueError for a naive datetime: its day would be a guess.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("uk_date() needs a timezone-aware datetime")
    return moment.astimezone(UK_TIME).date()


def bank_holidays(nation: str, year: int) -> frozenset[date]:
    """Every bank holiday of `nation` in `year`, substitute days included.

    Some fall on weekends (Boxing Day 2026); those are listed too, next to their
    substitute weekday. Raises ValueError for an unknown nation.
    """
    return _bank_holidays(str(nation), year)


def is_working_day(day: date, nation: str) -> bool:
    """True when `day` is Monday to Friday and not a bank holiday of `nation`.

    Raises ValueError for an unknown nation, TypeError for a datetime.
    """
    _check_day(day, "day")
    if day.weekday() >= 5:
        _subdivision(nation)  # still reject an unknown nation on a weekend
        return False
    return day not in _bank_holidays(str(nation), day.year)


def add_working_days(start: date, n: int, nation: str) -> date:
    """The n-th working day after `start`; `start` itself never counts.

    `n == 0` returns `start` unchanged (even if it is a weekend). `n == 1` is
    the next working day. Raises ValueError when `n` is negative.
    """
    _check_day(start, "start")
    _subdivision(nation)
    if n < 0:
        raise ValueError(f"n must be 0 or more working days, not {n}")
    day = start
    remaining = n
    while remaining:
        day += timedelta(days=1)
        if is_working_day(day, nation):
            remaining -= 1
    return day


def _weekdays_between(start: date, end: date) -> int:
    """Monday-to-Friday days in (start, end]; end > start."""
    full_weeks, rest = divmod((end - start).days, 7)
    count = full_weeks * 5
    day = start + timedelta(days=full_weeks * 7)
    for _ in range(rest):
        day += timedelta(days=1)
        if day.weekday() < 5:
            count += 1
    return count


def working_days_between(start: date, end: date, nation: str) -> int:
    """How many working days fall in (start, end]: after `start`, up to and including `end`.

    0 when `end` is on or before `start`. Cost grows with the number of years
    spanned, not days, so it is cheap for statistics over many deliveries.
    """
    _check_day(start, "start")
    _check_day(end, "end")
    _subdivision(nation)  # an unknown nation is an error even for an empty range
    if end <= start:
        return 0
    holidays_on_weekdays = sum(
        1
        for year in range(start.year, end.year + 1)
        for day in _bank_holidays(str(nation), year)
        if start < day <= end and day.weekday() < 5
    )
    return _weekdays_between(start, end) - holidays_on_weekdays


def working_day_number(delivered_on: date, today: date, nation: str) -> int:
    """Which working day of the clock `today` is, for a letter delivered on `delivered_on`.

    Day 1 is the first working day after delivery. On a weekend or bank holiday
    the number is that of the last working day before it (so a Saturday after
    day 3 is still day 3). On or before the delivery date it is 0.
    """
    return working_days_between(delivered_on, today, nation)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


@dataclass(frozen=True)
class DeadlineStatus:
    """Where the clock stands for one target (acknowledgement or reply) on one day.

    `day` is the working-day number (0 on the delivery day); `due_on` is the
    last working day that still meets the target; `overdue_by` counts working
    days after `due_on` up to today (0 while on time, including a weekend right
    after the due day).
    """

    day: int
    target: int
    due_on: date
    overdue_by: int

    @property
    def is_overdue(self) -> bool:
        """True from the first working day after `due_on`."""
        return self.overdue_by > 0

    @property
    def label(self) -> str:
        """The words the campaign page shows.

        "Day N of T" while on time (the due day itself reads "Day T of T"), then
        "Overdue by 1 working day", "Overdue by 2 working days", ...
        """
        if self.is_overdue:
            return f"Overdue by {_plural(self.overdue_by, 'working day')}"
        return f"Day {self.day} of {self.target}"


# The name the brief suggested; the same class.
Clock = DeadlineStatus


def deadline_status(
    delivered_on: date, target_days: int, today: date, nation: str
) -> DeadlineStatus:
    """The clock for a target of `target_days` working days counted from `delivered_on`.

    `due_on` is `add_working_days(delivered_on, target_days)`. Raises
    ValueError for a negative target or an unknown nation.
    """
    if target_days < 0:
        raise ValueError(f"A target must be 0 or more working days, not {target_days}")
    due_on = add_working_days(delivered_on, target_days, nation)
    return DeadlineStatus(
        day=working_day_number(delivered_on, today, nation),
        target=target_days,
        due_on=due_on,
        overdue_by=working_days_between(due_on, today, nation),
    )


@dataclass(frozen=True)
class ChaserRule:
    """One line of the published chaser schedule.

    `working_days_after_deadline` counts from the reply deadline (day T): the
    chaser is due on working day T + that number.
    """

    number: int
    working_days_after_deadline: int
    to_escalation: bool


# The published schedule. The third chaser exists only for recipients with an
# escalation contact; `chaser_steps` drops it otherwise.
CHASER_SCHEDULE: tuple[ChaserRule, ...] = (
    ChaserRule(number=1, working_days_after_deadline=1, to_escalation=False),
    ChaserRule(
        number=2,
        working_days_after_deadline=1 + CHASER_INTERVAL_WORKING_DAYS,
        to_escalation=False,
    ),
    ChaserRule(
        number=3,
        working_days_after_deadline=1 + 2 * CHASER_INTERVAL_WORKING_DAYS,
        to_escalation=True,
    ),
)


@dataclass(frozen=True)
class ChaserStep:
    """A chaser for one delivery: which one (1..3), the working day it is due
    on (counting from delivery, as the clock does), its date, and whether it goes
    to the escalation contact instead of the usual correspondence address."""

    number: int
    due_on: date
    to_escalation: bool
    working_day: int


def chaser_steps(
    delivered_on: date, reply_target_days: int, nation: str, has_escalation: bool
) -> list[ChaserStep]:
    """The full chaser plan for a delivery, in order: 2 steps, or 3 with an escalation contact.

    Step 1 is due on working day T + 1 (the first working day after the reply
    deadline), step 2 on T + 11, step 3 (escalation contact only) on T + 21.
    """
    if reply_target_days < 0:
        raise ValueError(f"A target must be 0 or more working days, not {reply_target_days}")
    steps: list[ChaserStep] = []
    for rule in CHASER_SCHEDULE:
        if rule.to_escalation and not has_escalation:
            continue
        working_day = reply_target_days + rule.working_days_after_deadline
        steps.append(
            ChaserStep(
                number=rule.number,
                due_on=add_working_days(delivered_on, working_day, nation),
                to_escalation=rule.to_escalation,
                working_day=working_day,
            )
        )
    return steps[:MAX_CHASERS]


def next_chaser(
    delivered_on: date,
    reply_target_days: int,
    nation: str,
    *,
    sent: int,
    has_escalation: bool,
    responded: bool,
    paused: bool,
    today: date,
    last_sent_on: date | None = None,
) -> ChaserStep | None:
    """The chaser to send `today`, or None.

    None when the department has responded in any way, when the organiser has
    paused chasers, when `sent` chasers already cover the plan (never more than
    3), when today is not a working day, or when the next step is not due yet.

    A step is due from its scheduled date. If the previous chaser actually went
    out late (`last_sent_on`, e.g. after a pause), the next waits at least
    10 working days from that send, so two chasers never arrive back to back;
    the returned step's `due_on` and `working_day` then show that later date.
    """
    _check_day(today, "today")
    if sent < 0:
        raise ValueError(f"sent must be 0 or more, not {sent}")
    if responded or paused:
        return None
    steps = chaser_steps(delivered_on, reply_target_days, nation, has_escalation)
    if sent >= len(steps):
        return None
    step = steps[sent]
    if last_sent_on is not None and sent > 0:
        earliest = add_working_days(last_sent_on, CHASER_INTERVAL_WORKING_DAYS, nation)
        if earliest > step.due_on:
            step = ChaserStep(
                number=step.number,
                due_on=earliest,
                to_escalation=step.to_escalation,
                working_day=working_day_number(delivered_on, earliest, nation),
            )
    if today < step.due_on or not is_working_day(today, nation):
        return None
    return step


def schedule_description(reply_target_days: int = DEFAULT_REPLY_TARGET) -> list[str]:
    """The published chaser schedule in plain English, one sentence per line.

    Shown to organisers and officials; it says exactly what `chaser_steps` and
    `next_chaser` do.
    """
    t = reply_target_days
    first = t + CHASER_SCHEDULE[0].working_days_after_deadline
    second = t + CHASER_SCHEDULE[1].working_days_after_deadline
    third = t + CHASER_SCHEDULE[2].working_days_after_deadline
    interval = CHASER_INTERVAL_WORKING_DAYS
    return [
        "Working days are Monday to Friday, leaving out the bank holidays of the "
        "department's nation. Day 1 is the first working day after the letter is delivered.",
        f"If there is no reply by the end of working day {t}, a polite reminder is sent "
        f"the next working day (working day {first}).",
        f"If there is still no reply, a second reminder is sent {interval} working days "
        f"later (working day {second}).",
        f"If there is still no reply and the department has named an escalation contact, "
        f"a third and final reminder goes to that contact {interval} working days later "
        f"(working day {third}). Without an escalation contact there is no third reminder.",
        f"No more than {MAX_CHASERS} reminders are ever sent, and none once the department "
        "has responded.",
        "Reminders are sent only on working days, and the organiser can pause them at any time.",
    ]
