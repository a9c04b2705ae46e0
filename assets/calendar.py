"""The calendar a campaign context may read beside the user's features.

The nightly run of day D writes the audiences and exports used on D + 1, so the calendar is the serving
day's: a context `day_of_week in (6, 7)` admits users on the audiences served on Saturday and Sunday.
"""

from __future__ import annotations

from datetime import date, timedelta

CALENDAR_COLUMNS = {  # column -> its meaning, as docs/contracts.md lists it
    "day_of_week": "ISO day of the week of the serving day (1 = Monday ... 7 = Sunday)",
    "day_of_month": "day of the month of the serving day (1-31)",
}


def serving_day(as_of: date) -> date:
    """The day the audiences and exports written for `as_of` are used."""
    return as_of + timedelta(days=1)


def calendar_values(as_of: date) -> dict[str, int]:
    """The calendar columns for the audiences of `as_of`."""
    day = serving_day(as_of)
    return {"day_of_week": day.isoweekday(), "day_of_month": day.day}
