"""Territory facts in English, Arabic and Chinese from the CLDR data that ships with babel.

Why babel: nothing can be downloaded from a dataset hub at run time, yet the default benchmark
should be built from real multilingual data rather than invented words. CLDR names every
territory, currency, language and time-zone city natively in each locale, so one fact ("Egypt's
currency is the Egyptian pound") can be stated in all three languages with real names.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

__all__ = ["FACT_TYPES", "LANGUAGES", "Territory", "load_territories"]

LANGUAGES: tuple[str, ...] = ("en", "ar", "zh")
"""Languages of the embedded benchmark (ISO 639-1)."""

FACT_TYPES: tuple[str, ...] = ("currency", "language", "city")
"""Fact types per territory; each becomes one QA question and one clause of a summary."""

# Macro-regions and pseudo-territories that carry no facts of their own.
_EXCLUDED = {"EU", "EZ", "UN", "ZZ", "QO", "XA", "XB"}


@dataclass(frozen=True)
class Territory:
    """One territory and its three facts, each named in every language of `LANGUAGES`."""

    code: str
    name: dict[str, str]
    currency: dict[str, str]
    language: dict[str, str]
    city: dict[str, str]

    def fact(self, fact_type: str, lang: str) -> str:
        """The value of `fact_type` (one of FACT_TYPES) named in `lang`."""
        return getattr(self, fact_type)[lang]


def _zones(code: str, zone_territories: dict[str, str]) -> list[str]:
    return sorted(z for z, t in zone_territories.items() if t == code and "/" in z)


def _localised(names: dict[str, str | None], key: str) -> dict[str, str] | None:
    """Keep a name only if every language has a real one (CLDR falls back to the code)."""
    if any(v is None or not v.strip() or v == key for v in names.values()):
        return None
    return {lang: v.strip() for lang, v in names.items()}  # type: ignore[union-attr]


@functools.lru_cache(maxsize=1)
def load_territories() -> tuple[Territory, ...]:
    """All territories with a currency, an official language and a city named in en, ar and zh.

    Returns:
        Territories sorted by ISO code; the result is deterministic for a given babel version.
    """
    from babel import Locale
    from babel.core import get_global
    from babel.dates import get_timezone_location
    from babel.languages import get_official_languages
    from babel.numbers import get_territory_currencies

    locales = {lang: Locale(lang) for lang in LANGUAGES}
    zone_territories = get_global("zone_territories")
    out: list[Territory] = []
    for code in sorted(locales["en"].territories):
        if len(code) != 2 or not code.isalpha() or code in _EXCLUDED:
            continue
        currencies = get_territory_currencies(code)
        languages = get_official_languages(code, de_facto=True)
        if not currencies or not languages:
            continue
        cur, lng = currencies[0], languages[0]
        name = _localised({k: loc.territories.get(code) for k, loc in locales.items()}, code)
        currency = _localised({k: loc.currencies.get(cur) for k, loc in locales.items()}, cur)
        language = _localised({k: loc.languages.get(lng) for k, loc in locales.items()}, lng)
        if None in (name, currency, language):
            continue
        # The first time-zone city not named like the territory itself (island states often
        # have a single zone named after them: a question about it would answer itself).
        city = None
        for zone in _zones(code, zone_territories):
            names = {k: get_timezone_location(zone, locale=k, return_city=True) for k in LANGUAGES}
            city = _localised(names, zone)
            if city is not None and all(city[k] != name[k] for k in LANGUAGES):  # type: ignore[index]
                break
            city = None
        if city is None:
            continue
        out.append(Territory(code, name, currency, language, city))  # type: ignore[arg-type]
    return tuple(out)
