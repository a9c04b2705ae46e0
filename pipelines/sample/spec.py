"""The parameters of one sample, its random streams (one per purpose) and its clock in microseconds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

from assets.pyramid_map import PyramidMap

DAY_US = 86_400_000_000
SOURCES = ("events", "profiles", "transactions", "erasure_requests")
_HOURLY_ACTIVITY = np.array(
    [
        1.0,
        0.6,
        0.4,
        0.3,
        0.3,
        0.5,
        1.2,
        2.5,
        3.5,
        3.5,
        3.2,
        3.3,
        4.0,
        3.8,
        3.4,
        3.3,
        3.5,
        4.0,
        4.5,
        5.0,
        5.0,
        4.5,
        3.5,
        2.0,
    ]
)
HOUR_WEIGHTS = _HOURLY_ACTIVITY / _HOURLY_ACTIVITY.sum()

# Each purpose draws from its own stream, so a change in one place leaves the others' numbers alone.
_STREAMS = {
    "users": 1,
    "erasures": 2,
    "events": 3,
    "transactions": 4,
    "profiles": 5,
    "defects": 6,
    "pii": 7,
    "time_to_event": 8,
    "content": 9,
}


@dataclass(frozen=True)
class Spec:
    """What one sample is drawn from: the map, the seed, the size, the window and the planted effects."""

    map: PyramidMap
    seed: int
    users: int
    days: int
    start: date
    effects: dict[str, float]

    def rng(self, purpose: str, *keys: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, _STREAMS[purpose], *keys])

    @property
    def start_us(self) -> int:
        midnight = datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)
        return int(midnight.timestamp()) * 1_000_000

    def day_start(self, day: int) -> int:
        return self.start_us + day * DAY_US

    def ds(self, day: int) -> str:
        return (self.start + timedelta(days=day)).isoformat()


def time_of_day(rng: np.random.Generator, k: int, earliest: np.ndarray | int = 0) -> np.ndarray:
    """Microseconds into the day, following the app's daily rhythm, squeezed into [earliest, end of day)."""
    fraction = (rng.choice(24, k, p=HOUR_WEIGHTS) + rng.random(k)) / 24.0
    earliest = np.asarray(earliest, dtype=np.int64)
    return earliest + (fraction * (DAY_US - earliest)).astype(np.int64)
