"""Working days, the deadline clock and the chaser schedule (issue #6, §5 and §6).

Every date below was checked by hand against `calendar.month(...)` and the
published UK bank holiday lists. The clock is frozen by passing `today`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from web.delivery.workdays import (
    CHASER_SCHEDULE,
    MAX_CHASERS,
    ChaserStep,
    add_working_days,
    bank_holidays,
    chaser_steps,
    deadline_status,
    is_working_day,
    next_chaser,
    schedule_description,
    uk_date,
    working_day_number,
    working_days_between,
)
from web.recipients.models import Nation

EW = "england-and-wales"
SCOT = "scotland"
NI = "northern-ireland"


# --- Which days are working days -------------------------------------------------


def test_every_recipient_nation_has_a_calendar() -> None:
    for nation in Nation:
        assert is_working_day(date(2026, 1, 5), nation) is True  # an ordinary Monday


def test_an_unknown_nation_is_refused_with_a_readable_message() -> None:
    with pytest.raises(ValueError, match=r'Unknown nation "wales".*"england-and-wales"'):
        is_working_day(date(2026, 1, 5), "wales")
    with pytest.raises(ValueError, match="Unknown nation"):
        working_days_between(date(2026, 1, 5), date(2026, 1, 1), "atlantis")


def test_england_and_wales_share_one_calendar() -> None:
    import holidays

    for year in range(2024, 2031):
        wales = frozenset(holidays.country_holidays("GB", subdiv="WLS", years=year))
        assert bank_holidays(EW, year) == wales


def test_weekends_are_never_working_days() -> None:
    for nation in (EW, SCOT, NI):
        assert is_working_day(date(2026, 1, 10), nation) is False  # Saturday
        assert is_working_day(date(2026, 1, 11), nation) is False  # Sunday


def test_christmas_2025_boxing_day_and_new_year_everywhere() -> None:
    for nation in (EW, SCOT, NI):
        assert is_working_day(date(2025, 12, 24), nation) is True  # Christmas Eve, Wednesday
        assert is_working_day(date(2025, 12, 25), nation) is False  # Thursday
        assert is_working_day(date(2025, 12, 26), nation) is False  # Friday
        assert is_working_day(date(2025, 12, 29), nation) is True
        assert is_working_day(date(2026, 1, 1), nation) is False  # Thursday


def test_boxing_day_2026_on_a_saturday_moves_to_monday_28_december() -> None:
    for nation in (EW, SCOT, NI):
        assert is_working_day(date(2026, 12, 25), nation) is False  # Friday
        assert date(2026, 12, 26) in bank_holidays(nation, 2026)  # Saturday
        assert is_working_day(date(2026, 12, 28), nation) is False  # substitute Monday
        assert is_working_day(date(2026, 12, 29), nation) is True
        assert is_working_day(date(2027, 1, 1), nation) is False  # Friday


def test_scotland_keeps_2_january_and_moves_it_off_a_saturday() -> None:
    assert is_working_day(date(2026, 1, 2), SCOT) is False  # Friday
    assert is_working_day(date(2026, 1, 2), EW) is True
    assert is_working_day(date(2026, 1, 2), NI) is True
    # 2 January 2027 is a Saturday: Scotland's substitute is Monday 4 January.
    assert is_working_day(date(2027, 1, 4), SCOT) is False
    assert is_working_day(date(2027, 1, 4), EW) is True


def test_easter_2026_good_friday_everywhere_easter_monday_not_in_scotland() -> None:
    for nation in (EW, SCOT, NI):
        assert is_working_day(date(2026, 4, 3), nation) is False  # Good Friday
    assert is_working_day(date(2026, 4, 6), EW) is False  # Easter Monday
    assert is_working_day(date(2026, 4, 6), NI) is False
    assert is_working_day(date(2026, 4, 6), SCOT) is True


def test_st_andrews_day_is_a_scottish_holiday_only() -> None:
    assert is_working_day(date(2026, 11, 30), SCOT) is False  # Monday
    assert is_working_day(date(2026, 11, 30), EW) is True
    # 30 November 2025 was a Sunday: Scotland took Monday 1 December.
    assert is_working_day(date(2025, 12, 1), SCOT) is False
    assert is_working_day(date(2025, 12, 1), EW) is True


def test_northern_ireland_st_patricks_day_and_the_twelfth() -> None:
    assert is_working_day(date(2026, 3, 17), NI) is False  # Tuesday
    assert is_working_day(date(2026, 3, 17), EW) is True
    assert is_working_day(date(2026, 3, 17), SCOT) is True
    # 12 July 2026 is a Sunday: the substitute is Monday 13 July.
    assert date(2026, 7, 12) in bank_holidays(NI, 2026)
    assert is_working_day(date(2026, 7, 13), NI) is False
    assert is_working_day(date(2026, 7, 13), EW) is True


def test_august_bank_holiday_last_monday_in_england_first_monday_in_scotland() -> None:
    assert is_working_day(date(2026, 8, 31), EW) is False
    assert is_working_day(date(2026, 8, 31), SCOT) is True
    assert is_working_day(date(2026, 8, 3), SCOT) is False
    assert is_working_day(date(2026, 8, 3), EW) is True


def test_a_timestamp_is_refused_where_a_day_is_expected() -> None:
    with pytest.raises(TypeError, match="uk_date"):
        is_working_day(datetime(2026, 1, 5, 12, tzinfo=UTC), EW)


def test_uk_date_uses_london_time_in_summer_and_winter() -> None:
    assert uk_date(datetime(2026, 6, 30, 23, 30, tzinfo=UTC)) == date(2026, 7, 1)  # BST
    assert uk_date(datetime(2026, 1, 5, 23, 30, tzinfo=UTC)) == date(2026, 1, 5)  # GMT
    with pytest.raises(ValueError, match="timezone-aware"):
        uk_date(datetime(2026, 1, 5, 23, 30))  # noqa: DTZ001 - the point of the test


# --- Counting working days ------------------------------------------------------


def test_adding_working_days_never_counts_the_start_day() -> None:
    assert add_working_days(date(2026, 1, 12), 0, EW) == date(2026, 1, 12)
    assert add_working_days(date(2026, 1, 12), 1, EW) == date(2026, 1, 13)
    assert add_working_days(date(2026, 1, 16), 1, EW) == date(2026, 1, 19)  # Fri -> Mon
    assert add_working_days(date(2026, 1, 17), 1, EW) == date(2026, 1, 19)  # Sat -> Mon
    with pytest.raises(ValueError, match="0 or more"):
        add_working_days(date(2026, 1, 12), -1, EW)


def test_easter_delays_day_one_by_a_different_amount_in_each_nation() -> None:
    thursday_before_easter = date(2026, 4, 2)
    assert add_working_days(thursday_before_easter, 1, EW) == date(2026, 4, 7)
    assert add_working_days(thursday_before_easter, 1, NI) == date(2026, 4, 7)
    assert add_working_days(thursday_before_easter, 1, SCOT) == date(2026, 4, 6)


@pytest.mark.parametrize(
    ("nation", "target", "due_on"),
    [
        (EW, 5, date(2026, 1, 5)),
        (SCOT, 5, date(2026, 1, 6)),
        (EW, 20, date(2026, 1, 26)),
        (SCOT, 20, date(2026, 1, 27)),
    ],
)
def test_delivered_on_christmas_eve_2025(nation: str, target: int, due_on: date) -> None:
    assert deadline_status(date(2025, 12, 24), target, date(2025, 12, 24), nation).due_on == due_on


@pytest.mark.parametrize(
    ("nation", "target", "due_on"),
    [
        (EW, 5, date(2027, 1, 5)),
        (SCOT, 5, date(2027, 1, 6)),
        (EW, 20, date(2027, 1, 26)),
        (SCOT, 20, date(2027, 1, 27)),
    ],
)
def test_delivered_on_christmas_eve_2026(nation: str, target: int, due_on: date) -> None:
    assert deadline_status(date(2026, 12, 24), target, date(2026, 12, 24), nation).due_on == due_on


def test_working_days_between_counts_after_start_up_to_and_including_end() -> None:
    monday = date(2026, 1, 12)
    assert working_days_between(monday, monday, EW) == 0
    assert working_days_between(monday, date(2026, 1, 19), EW) == 5
    assert working_days_between(date(2026, 1, 19), monday, EW) == 0
    # Christmas week 2026 in England: Tue 29, Wed 30, Thu 31 only.
    assert working_days_between(date(2026, 12, 24), date(2027, 1, 3), EW) == 3


def test_working_days_between_agrees_with_counting_day_by_day() -> None:
    start = date(2024, 11, 20)
    for nation in (EW, SCOT, NI):
        for length in (*range(15), 40, 200, 400, 800):
            end = start + timedelta(days=length)
            by_hand = sum(
                is_working_day(start + timedelta(days=i), nation) for i in range(1, length + 1)
            )
            assert working_days_between(start, end, nation) == by_hand
            assert add_working_days(start, by_hand, nation) <= end


# --- The clock on the campaign page ----------------------------------------------


def test_day_numbers_across_a_weekend() -> None:
    monday = date(2026, 1, 12)
    assert working_day_number(monday, monday, EW) == 0
    assert working_day_number(monday, date(2026, 1, 11), EW) == 0  # before delivery
    assert working_day_number(monday, date(2026, 1, 13), EW) == 1
    assert working_day_number(monday, date(2026, 1, 16), EW) == 4  # Friday
    assert working_day_number(monday, date(2026, 1, 17), EW) == 4  # Saturday
    assert working_day_number(monday, date(2026, 1, 18), EW) == 4  # Sunday
    assert working_day_number(monday, date(2026, 1, 19), EW) == 5
    assert deadline_status(monday, 20, date(2026, 1, 17), EW).label == "Day 4 of 20"


def test_a_friday_delivery_starts_counting_on_monday() -> None:
    friday = date(2026, 1, 16)
    assert deadline_status(friday, 20, date(2026, 1, 17), EW).label == "Day 0 of 20"
    assert deadline_status(friday, 20, date(2026, 1, 19), EW).label == "Day 1 of 20"


def test_a_saturday_delivery_makes_monday_day_one() -> None:
    saturday = date(2026, 1, 17)
    assert working_day_number(saturday, date(2026, 1, 18), EW) == 0
    assert working_day_number(saturday, date(2026, 1, 19), EW) == 1
    assert deadline_status(saturday, 5, date(2026, 1, 19), EW).due_on == date(2026, 1, 23)


def test_the_due_day_reads_day_20_of_20_and_the_next_working_day_is_overdue() -> None:
    delivered = date(2026, 1, 12)
    on_due_day = deadline_status(delivered, 20, date(2026, 2, 9), EW)
    assert on_due_day.due_on == date(2026, 2, 9)
    assert on_due_day.label == "Day 20 of 20"
    assert on_due_day.is_overdue is False

    day_after = deadline_status(delivered, 20, date(2026, 2, 10), EW)
    assert day_after.is_overdue is True
    assert day_after.overdue_by == 1
    assert day_after.label == "Overdue by 1 working day"

    assert deadline_status(delivered, 20, date(2026, 2, 11), EW).label == (
        "Overdue by 2 working days"
    )
    # Saturday 14 February: Tue, Wed, Thu, Fri have passed since the due day.
    assert deadline_status(delivered, 20, date(2026, 2, 14), EW).label == (
        "Overdue by 4 working days"
    )


def test_a_weekend_right_after_the_due_day_is_not_yet_overdue() -> None:
    # Due on Friday 23 January (5 working days from Friday 16 January).
    status = deadline_status(date(2026, 1, 16), 5, date(2026, 1, 24), EW)
    assert status.due_on == date(2026, 1, 23)
    assert status.label == "Day 5 of 5"
    assert status.overdue_by == 0


def test_a_negative_target_is_refused() -> None:
    with pytest.raises(ValueError, match="0 or more"):
        deadline_status(date(2026, 1, 12), -1, date(2026, 1, 12), EW)


# --- Chasers -------------------------------------------------------------------

DELIVERED = date(2026, 1, 12)  # Monday; reply due Monday 9 February 2026 (day 20)
STEP_1 = ChaserStep(number=1, due_on=date(2026, 2, 10), to_escalation=False, working_day=21)
STEP_2 = ChaserStep(number=2, due_on=date(2026, 2, 24), to_escalation=False, working_day=31)
STEP_3 = ChaserStep(number=3, due_on=date(2026, 3, 10), to_escalation=True, working_day=41)


def _next(
    today: date,
    *,
    sent: int = 0,
    has_escalation: bool = True,
    responded: bool = False,
    paused: bool = False,
    last_sent_on: date | None = None,
) -> ChaserStep | None:
    return next_chaser(
        DELIVERED,
        20,
        EW,
        sent=sent,
        has_escalation=has_escalation,
        responded=responded,
        paused=paused,
        today=today,
        last_sent_on=last_sent_on,
    )


def test_the_published_schedule_has_three_steps_ten_working_days_apart() -> None:
    assert [rule.working_days_after_deadline for rule in CHASER_SCHEDULE] == [1, 11, 21]
    assert [rule.to_escalation for rule in CHASER_SCHEDULE] == [False, False, True]
    assert MAX_CHASERS == 3


def test_chaser_plan_with_and_without_an_escalation_contact() -> None:
    assert chaser_steps(DELIVERED, 20, EW, has_escalation=True) == [STEP_1, STEP_2, STEP_3]
    assert chaser_steps(DELIVERED, 20, EW, has_escalation=False) == [STEP_1, STEP_2]


def test_no_chaser_before_the_reply_deadline_has_passed() -> None:
    assert _next(date(2026, 1, 30)) is None
    assert _next(date(2026, 2, 9)) is None  # the due day itself: still on time


def test_the_first_chaser_goes_the_working_day_after_the_deadline() -> None:
    assert _next(date(2026, 2, 10)) == STEP_1
    assert _next(date(2026, 2, 12)) == STEP_1  # a missed run catches up


def test_chasers_wait_for_a_working_day() -> None:
    assert _next(date(2026, 2, 14)) is None  # Saturday
    assert _next(date(2026, 2, 16)) == STEP_1  # Monday


def test_the_second_chaser_comes_ten_working_days_after_the_first() -> None:
    assert _next(date(2026, 2, 23), sent=1) is None
    assert _next(date(2026, 2, 24), sent=1) == STEP_2


def test_the_third_chaser_goes_only_to_an_escalation_contact() -> None:
    assert _next(date(2026, 3, 9), sent=2) is None
    assert _next(date(2026, 3, 10), sent=2) == STEP_3
    assert _next(date(2026, 3, 10), sent=2, has_escalation=False) is None
    assert _next(date(2026, 6, 1), sent=2, has_escalation=False) is None


def test_never_more_than_three_chasers() -> None:
    for sent in (3, 4, 10):
        assert _next(date(2027, 6, 1), sent=sent) is None


def test_no_chaser_after_any_response() -> None:
    for sent in (0, 1, 2):
        assert _next(date(2026, 6, 1), sent=sent, responded=True) is None


def test_no_chaser_while_paused_and_the_next_one_waits_after_a_late_send() -> None:
    assert _next(date(2026, 2, 10), paused=True) is None
    # Paused until March; the first chaser then went out on Monday 2 March.
    # The second waits 10 working days from that send: Monday 16 March.
    assert _next(date(2026, 3, 10), sent=1, last_sent_on=date(2026, 3, 2)) is None
    late_second = _next(date(2026, 3, 16), sent=1, last_sent_on=date(2026, 3, 2))
    assert late_second == ChaserStep(
        number=2, due_on=date(2026, 3, 16), to_escalation=False, working_day=45
    )


def test_chasers_skip_the_christmas_holidays_in_each_nation() -> None:
    # Delivered Christmas Eve 2025 with a 5-day target: England's reply is due
    # Monday 5 January 2026 and Scotland's Tuesday 6 January (2 January is a holiday).
    england = chaser_steps(date(2025, 12, 24), 5, EW, has_escalation=False)
    scotland = chaser_steps(date(2025, 12, 24), 5, SCOT, has_escalation=False)
    assert [step.due_on for step in england] == [date(2026, 1, 6), date(2026, 1, 20)]
    assert [step.due_on for step in scotland] == [date(2026, 1, 7), date(2026, 1, 21)]


def test_the_schedule_is_published_in_plain_english() -> None:
    lines = schedule_description(20)
    text = " ".join(lines)
    assert (
        "If there is no reply by the end of working day 20, a polite reminder is sent "
        "the next working day (working day 21)."
    ) in lines
    assert "10 working days later (working day 31)" in text
    assert "escalation contact" in text
    assert "working day 41" in text
    assert "No more than 3 reminders" in text
    assert "pause" in text
    assert "working day 6" in " ".join(schedule_description(5))
