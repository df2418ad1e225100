"""The sun's position for shadow studies.

Solar azimuth and elevation come from astral (``astral.sun``), which implements NOAA's solar
position algorithm: no dependencies, no data files, no network. Against NREL's SPA (pvlib) it
agrees to about 0.005° at Rostock (tests/test_render.py keeps SPA values to compare with);
a shadow moves 1 cm per metre of building height for 0.6° of sun elevation, so that is far
below what a render can show. Elevations are apparent ones (with atmospheric refraction),
the sun as one sees it and as shadows fall.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
from astral import Observer
from astral.sun import azimuth, elevation, sunrise, sunset

from twin.errors import InputError

__all__ = [
    "LOCAL_TIME",
    "SunPosition",
    "day_series",
    "parse_day",
    "parse_interval",
    "parse_time",
    "sun_position",
]

LOCAL_TIME = ZoneInfo("Europe/Berlin")
"""Times without a UTC offset are local time at the scene (CET/CEST)."""
_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(h|min|m)\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SunPosition:
    """Where the sun stands, seen from the scene."""

    time: dt.datetime
    azimuth: float
    """Degrees clockwise from true north."""
    elevation: float
    """Apparent elevation above the horizon (degrees)."""

    @property
    def direction(self) -> np.ndarray:
        """Unit vector towards the sun in east-north-up."""
        a, e = math.radians(self.azimuth), math.radians(self.elevation)
        return np.array([math.sin(a) * math.cos(e), math.cos(a) * math.cos(e), math.sin(e)])


def parse_time(text: str, option: str = "--sun") -> dt.datetime:
    """An ISO 8601 time (``2026-06-21T15:00+02:00``); without an offset, local time."""
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"{option} {text!r}: not a time; write it as ISO 8601, e.g. 2026-06-21T15:00+02:00 "
            "(without +HH:MM: local time in Rostock)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=LOCAL_TIME)
    return when


def parse_day(text: str, option: str = "--sun-series") -> dt.date:
    """An ISO 8601 date (``2026-06-21``)."""
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{option} {text!r}: not a date; write it as 2026-06-21") from None


def parse_interval(text: str, option: str = "--every") -> dt.timedelta:
    """``1h``, ``30min``, ``15m``: a step between 1 minute and 12 hours."""
    match = _INTERVAL.match(text)
    if match is None:
        raise InputError(f"{option} {text!r}: write the step as 1h, 30min or 15m")
    value = float(match.group(1))
    step = dt.timedelta(hours=value) if match.group(2).lower() == "h" else dt.timedelta(
        minutes=value)
    if not dt.timedelta(minutes=1) <= step <= dt.timedelta(hours=12):
        raise InputError(f"{option} {text!r}: the step must lie between 1min and 12h")
    return step


def sun_position(longitude: float, latitude: float, when: dt.datetime) -> SunPosition:
    """The sun seen from (longitude, latitude) at ``when`` (an aware datetime)."""
    observer = Observer(latitude=latitude, longitude=longitude)
    return SunPosition(
        time=when,
        azimuth=float(azimuth(observer, when)),
        elevation=float(elevation(observer, when, with_refraction=True)),
    )


def daylight(longitude: float, latitude: float, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """Sunrise and sunset of a local day."""
    observer = Observer(latitude=latitude, longitude=longitude)
    return (sunrise(observer, day, tzinfo=LOCAL_TIME), sunset(observer, day, tzinfo=LOCAL_TIME))


def require_daylight(position: SunPosition, longitude: float, latitude: float) -> None:
    """InputError when the sun is below the horizon (no shadows to study)."""
    if position.elevation > 0.0:
        return
    rise, set_ = daylight(longitude, latitude, position.time.astimezone(LOCAL_TIME).date())
    raise InputError(
        f"--sun {position.time.isoformat(timespec='minutes')}: the sun is below the horizon "
        f"there (elevation {position.elevation:.1f}°); choose a time between sunrise "
        f"{rise:%H:%M} and sunset {set_:%H:%M} ({rise:%Z})"
    )


def day_series(
    longitude: float, latitude: float, day: dt.date, step: dt.timedelta
) -> list[SunPosition]:
    """Sun positions every ``step`` from local midnight through the day, daylight only."""
    start = dt.datetime.combine(day, dt.time(0, 0), tzinfo=LOCAL_TIME)
    positions = []
    when = start
    while when.astimezone(LOCAL_TIME).date() == day:
        position = sun_position(longitude, latitude, when)
        if position.elevation > 0.0:
            positions.append(position)
        # Step in UTC, so a day with a clock change still has evenly spaced times.
        when = (when.astimezone(dt.UTC) + step).astimezone(LOCAL_TIME)
    if not positions:
        raise InputError(f"--sun-series {day.isoformat()}: the sun does not rise that day")
    return positions
