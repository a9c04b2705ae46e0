"""Rendering and writing: the drawn arrays as landing-file text (ids, ISO timestamps, JSON), one file a day.

Text is built column by column with polars; categorical values are Enums, so a row costs an integer
and each distinct text exists once.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import polars as pl

from assets.contract import CANONICAL_COLUMNS
from pipelines.sample.behaviour import EVENT_TYPES, Vocab
from pipelines.sample.defects import (
    BAD_BIRTH_YEARS,
    BAD_TIMESTAMPS,
    MIXED_OFFSETS,
    ORPHAN_USER_IDS,
    ST_BAD,
    ST_MIXED,
    ST_SECONDARY,
    UNKNOWN_CURRENCIES,
    UNKNOWN_EVENT_TYPES,
)
from pipelines.sample.pii import fake_pii
from pipelines.sample.population import COUNTRIES, CURRENCIES, PLANS, Population
from pipelines.sample.spec import SOURCES, Spec
from pipelines.sample.transactions import MERCHANT_CATEGORIES, STATUSES, TXN_TYPES

EVENT_TIME_STYLES = ("%Y-%m-%dT%H:%M:%S%.6fZ", "%Y-%m-%dT%H:%M:%S+00:00")
TXN_TIME_STYLES = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S%.6f+00:00")
PROFILE_TIME_STYLE = "%Y-%m-%dT%H:%M:%SZ"
PROFILE_COLUMNS = tuple(CANONICAL_COLUMNS["profiles"])  # the landing contract, in its order
TRANSACTION_COLUMNS = tuple(CANONICAL_COLUMNS["transactions"])
ERASURE_COLUMNS = tuple(CANONICAL_COLUMNS["erasure_requests"])


class Renderer(Protocol):
    """Turns one day's rows into a frame and writes it as a landing file with the given extension."""

    extension: str

    def render(self, rows: dict[str, np.ndarray]) -> pl.DataFrame: ...

    def write(self, frame: pl.DataFrame, path: Path) -> None: ...


class Writer:
    """Writes each source's rows day by day, timing the text rendering apart from the rest."""

    def __init__(self, spec: Spec, landing: Path):
        self.spec, self.landing = spec, landing
        self.files: list[Path] = []
        self.rows_by_day: dict[str, dict[str, int]] = {}
        self.render_seconds = 0.0

    def write(self, source: str, rows: dict[str, np.ndarray], renderer: Renderer) -> None:
        bounds = np.searchsorted(rows["land"], np.arange(self.spec.days + 1))
        self.rows_by_day[source] = {}
        for day in range(self.spec.days):
            part = {key: column[bounds[day] : bounds[day + 1]] for key, column in rows.items()}
            clock = time.perf_counter()
            frame = renderer.render(part)
            self.render_seconds += time.perf_counter() - clock
            path = self.landing / source / self.spec.ds(day) / f"{source}-0.{renderer.extension}"
            path.parent.mkdir(parents=True, exist_ok=True)
            renderer.write(frame, path)
            self.files.append(path)
            self.rows_by_day[source][self.spec.ds(day)] = frame.height


class _CsvRenderer:
    extension = "csv"
    columns: tuple[str, ...] = ()

    def write(self, frame: pl.DataFrame, path: Path) -> None:
        frame.select(self.columns).write_csv(path, float_precision=2)


class EventRenderer:
    """Events as JSON text, one column per key, for a comma-joined unquoted write: one object a line.

    Each column holds `"key":value` fragments (the first opens the object, the last closes it). That is
    much faster than building lines, and unlike write_ndjson writes only the properties an event has (a
    struct column writes every key, null ones too). Categorical fragments are Enums: a row costs an
    integer, each distinct text exists once.
    """

    extension = "jsonl"

    def __init__(self, spec: Spec, pop: Population, sessions: int):
        vocab = Vocab(spec.map)
        self.users = _user_fragments(pop)
        self.event_types = _fragments("event_type", EVENT_TYPES + UNKNOWN_EVENT_TYPES)
        self.sessions = ('"session_id":"s' + pl.int_range(0, sessions, eager=True).cast(pl.String) + '"').append(
            pl.Series(['"session_id":null'])
        )
        self.tails = _tail_fragments(vocab)

    def render(self, rows: dict[str, np.ndarray]) -> pl.DataFrame:
        no_id = np.flatnonzero(rows["seq"] < 0)
        event_id = ('{"event_id":"e' + pl.Series(rows["seq"]).cast(pl.String) + '"').scatter(no_id, '{"event_id":null')
        return pl.DataFrame(
            {
                "event_id": event_id,
                "user_id": self.users.gather(rows["user"]),
                "event_type": self.event_types.gather(rows["etype"]),
                "occurred_at": _timestamps(rows, EVENT_TIME_STYLES, key="occurred_at"),
                "session_id": self.sessions.gather(
                    np.where(rows["session"] < 0, len(self.sessions) - 1, rows["session"])
                ),
                "rest": self.tails.gather(
                    rows["tail"]
                ),  # channel, campaign_id, touchpoint_id, properties, closing brace
            }
        )

    def write(self, frame: pl.DataFrame, path: Path) -> None:
        frame.write_csv(path, include_header=False, quote_style="never", separator=",")


class TransactionRenderer(_CsvRenderer):
    columns = TRANSACTION_COLUMNS

    def __init__(self, pop: Population):
        self.users = _user_column(pop)

    def render(self, rows: dict[str, np.ndarray]) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "txn_id": ("t" + pl.Series(rows["seq"]).cast(pl.String)).set(pl.Series(rows["seq"] < 0), None),
                "user_id": self.users.gather(rows["user"]),
                "occurred_at": _timestamps(rows, TXN_TIME_STYLES),
                "amount": rows["amount"],
                "currency": _enum(CURRENCIES + UNKNOWN_CURRENCIES, rows["currency"]),
                "txn_type": _enum(TXN_TYPES, rows["ttype"]),
                "merchant_category": _enum(MERCHANT_CATEGORIES, rows["merchant"]),
                "status": _enum(STATUSES, rows["status"]),
            }
        )


class ProfileRenderer(_CsvRenderer):
    columns = PROFILE_COLUMNS

    def __init__(self, spec: Spec, pop: Population):
        self.pop = pop
        self.pii = fake_pii(spec, pop)

    def render(self, rows: dict[str, np.ndarray]) -> pl.DataFrame:
        user, pop = rows["user"], self.pop
        bad = np.flatnonzero(rows["bad_year"] >= 0)
        unreadable = pl.Series(BAD_BIRTH_YEARS).gather(rows["bad_year"][bad])
        birth_year = pl.Series(pop.birth_year[user]).cast(pl.String).scatter(bad, unreadable)
        return pl.DataFrame(
            {
                "user_id": pop.ids.gather(user),
                "updated_at": _format_utc(rows["updated"], PROFILE_TIME_STYLE),
                "signup_at": _format_utc(pop.signup_us[user], PROFILE_TIME_STYLE),
                "country": _enum(COUNTRIES, pop.country[user]),
                "birth_year": birth_year,
                "plan": _enum(PLANS, rows["plan"]),
                "consent_personalization": rows["cp"],
                "consent_marketing": rows["cm"],
                **{column: values.gather(user) for column, values in self.pii.items()},
            }
        )


class ErasureRenderer(_CsvRenderer):
    columns = ERASURE_COLUMNS

    def __init__(self, pop: Population):
        self.pop = pop

    def render(self, rows: dict[str, np.ndarray]) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "user_id": self.pop.ids.gather(rows["user"]),
                "requested_at": _format_utc(self.pop.erasure_us[rows["user"]], PROFILE_TIME_STYLE),
            }
        )


def _fragments(key: str, values: Sequence[str]) -> pl.Series:
    """Enum of `"key":"value"` texts, one per value, then `"key":null` (code len(values))."""
    texts = [f'"{key}":{_json_text(v)}' for v in values] + [f'"{key}":null']
    return pl.Series(key, texts, dtype=pl.Enum(texts))


def _user_fragments(pop: Population) -> pl.Series:
    """Codes: 0..n-1 the users, then the orphan ids, then null."""
    ids = pl.concat([pop.ids, pl.Series(ORPHAN_USER_IDS)])
    texts = ('"user_id":"' + ids + '"').append(pl.Series(['"user_id":null']))
    return pl.Series("user_id", texts, dtype=pl.Enum(texts))


def _user_column(pop: Population) -> pl.Series:
    """Same codes as _user_fragments, as a nullable plain column."""
    ids = pl.concat([pop.ids, pl.Series(ORPHAN_USER_IDS)])
    return pl.Series("user_id", ids, dtype=pl.Enum(ids)).append(pl.Series([None], dtype=pl.Enum(ids)))


def _tail_fragments(vocab: Vocab) -> pl.Series:
    """Every (channel, campaign, touchpoint, property) combination as one Enum: a few thousand texts."""
    channels = [_json_text(c) for c in vocab.channels]
    campaigns = ["null", *map(_json_text, vocab.campaigns)]
    touchpoints = ["null", *map(_json_text, vocab.touchpoints)]
    properties = ["{}", *(f"{{{_json_text(k)}:{_json_text(v)}}}" for k, v in vocab.properties)]
    texts = [
        f'"channel":{ch},"campaign_id":{c},"touchpoint_id":{t},"properties":{p}}}'
        for ch in channels
        for c in campaigns
        for t in touchpoints
        for p in properties
    ]
    return pl.Series("rest", texts, dtype=pl.Enum(texts))


def _json_text(value: str) -> str:
    text = json.dumps(value, ensure_ascii=False)
    if text != f'"{value}"':
        raise ValueError(f"{value!r} would need JSON escaping; vocabulary values must be plain text")
    return text


def _enum(categories: Sequence[str], codes: np.ndarray) -> pl.Series:
    """Categorical column from integer codes; a negative code is null."""
    series = pl.Series(list(categories), dtype=pl.Enum(list(categories)))
    return series.gather(pl.Series(codes).set(pl.Series(codes < 0), None))


def _timestamps(rows: dict[str, np.ndarray], styles: tuple[str, str], key: str | None = None) -> pl.Series:
    """ISO 8601 text in the row's style: the source's main or second style, a foreign offset, or garbage.

    With `key`, each value is the JSON fragment `"key":"text"`.
    """
    pre, post = (f'"{key}":"', '"') if key else ("", "")
    style, t = rows["style"], rows["t"]
    text = _format_utc(t, pre + styles[0] + post)
    idx = np.flatnonzero(style == ST_SECONDARY)
    text = text.scatter(idx, _format_utc(t[idx], pre + styles[1] + post))
    idx = np.flatnonzero((style >= ST_MIXED) & (style < ST_BAD))
    offset = style[idx] - ST_MIXED
    minutes = np.array([_offset_minutes(o) for o in MIXED_OFFSETS])[offset]
    local = _format_utc(t[idx] + minutes * 60_000_000, pre + "%Y-%m-%dT%H:%M:%S%.6f")
    text = text.scatter(idx, local + pl.Series([o + post for o in MIXED_OFFSETS]).gather(offset))
    idx = np.flatnonzero(style >= ST_BAD)
    return text.scatter(idx, pl.Series([pre + b + post for b in BAD_TIMESTAMPS]).gather(style[idx] - ST_BAD))


def _offset_minutes(offset: str) -> int:
    hours, minutes = offset[1:].split(":")
    return (-1 if offset[0] == "-" else 1) * (int(hours) * 60 + int(minutes))


def _format_utc(t_us: np.ndarray, style: str) -> pl.Series:
    return pl.Series(np.asarray(t_us, dtype=np.int64)).cast(pl.Datetime("us")).dt.strftime(style)


def clear_previous_sample(landing: Path) -> None:
    for folder in (*SOURCES, "_truth"):
        shutil.rmtree(landing / folder, ignore_errors=True)


def write_json(path: Path, content: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n")
    return path
