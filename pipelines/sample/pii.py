"""Fake but realistic PII for the profiles: names by country, `example.*` emails, phone numbers."""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.sample.population import COUNTRIES, Population
from pipelines.sample.spec import Spec

FIRST_NAMES = {
    "DE": (
        "Lukas",
        "Anna",
        "Jonas",
        "Lea",
        "Felix",
        "Marie",
        "Paul",
        "Sophie",
        "Maximilian",
        "Hannah",
        "Jürgen",
        "Katrin",
    ),
    "FR": ("Lucas", "Emma", "Hugo", "Léa", "Louis", "Chloé", "Gabriel", "Manon", "Théo", "Camille", "Nathan", "Inès"),
    "NL": ("Daan", "Emma", "Sem", "Julia", "Lucas", "Tess", "Finn", "Sophie", "Bram", "Fenna", "Jesse", "Lotte"),
    "ES": (
        "Hugo",
        "Lucía",
        "Martín",
        "Sofía",
        "Pablo",
        "María",
        "Alejandro",
        "Paula",
        "Daniel",
        "Valeria",
        "José",
        "Carmen",
    ),
    "GB": (
        "Oliver",
        "Olivia",
        "George",
        "Amelia",
        "Harry",
        "Isla",
        "Jack",
        "Ava",
        "Charlie",
        "Emily",
        "Thomas",
        "Grace",
    ),
    "IE": ("Jack", "Emily", "James", "Grace", "Noah", "Fiadh", "Conor", "Aoife", "Seán", "Niamh", "Oisín", "Saoirse"),
}
LAST_NAMES = {
    "DE": ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann"),
    "FR": ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau"),
    "NL": ("de Jong", "Jansen", "de Vries", "van den Berg", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder"),
    "ES": ("García", "Rodríguez", "González", "Fernández", "López", "Martínez", "Sánchez", "Pérez", "Gómez", "Ruiz"),
    "GB": ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Evans"),
    "IE": ("Murphy", "Kelly", "O'Sullivan", "Walsh", "Smith", "O'Brien", "Byrne", "Ryan", "O'Connor", "O'Neill"),
}
PHONE_FORMATS = {  # prefix, then this many random digits; GB uses Ofcom's range reserved for drama
    "DE": ("+49 15", 9),
    "FR": ("+33 6", 8),
    "NL": ("+31 6", 8),
    "ES": ("+34 6", 8),
    "GB": ("+44 7700 900", 3),
    "IE": ("+353 8", 8),
}
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example")
_ASCII = {
    "ä": "ae",
    "ö": "oe",
    "ü": "ue",
    "ß": "ss",
    "é": "e",
    "è": "e",
    "á": "a",
    "í": "i",
    "ó": "o",
    "ú": "u",
    "ñ": "n",
    "ç": "c",
    "'": "",
    " ": "",
}


def fake_pii(spec: Spec, pop: Population) -> dict[str, pl.Series]:
    """Each user's email, phone and full name, drawn per country from the lists above."""
    rng = spec.rng("pii")
    n = pop.n
    first, last, prefix = (np.empty(n, dtype=object) for _ in range(3))
    digits, width = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    for code, country in enumerate(COUNTRIES):  # loops over countries, not rows
        idx = np.flatnonzero(pop.country == code)
        first[idx] = np.array(FIRST_NAMES[country], dtype=object)[rng.integers(0, len(FIRST_NAMES[country]), len(idx))]
        last[idx] = np.array(LAST_NAMES[country], dtype=object)[rng.integers(0, len(LAST_NAMES[country]), len(idx))]
        prefix[idx], width[idx] = PHONE_FORMATS[country]
        digits[idx] = rng.integers(0, 10 ** PHONE_FORMATS[country][1], len(idx))
    first_s, last_s = pl.Series(first, dtype=pl.String), pl.Series(last, dtype=pl.String)
    handle = (first_s + "." + last_s).str.to_lowercase().str.replace_many(list(_ASCII), list(_ASCII.values()))
    number = pl.Series(rng.integers(1, 100, n)).cast(pl.String).set(pl.Series(rng.random(n) < 0.5), "")
    domain = pl.Series(EMAIL_DOMAINS).gather(rng.integers(0, len(EMAIL_DOMAINS), n))
    phone_digits = (
        pl.DataFrame({"d": digits, "w": width}).select(pl.col("d").cast(pl.String).str.zfill(pl.col("w"))).to_series()
    )
    return {
        "email": handle + number + "@" + domain,
        "phone": pl.Series(prefix, dtype=pl.String) + phone_digits,
        "full_name": first_s + " " + last_s,
    }
