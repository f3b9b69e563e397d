"""The message catalogues (Korean, English) and the translator pages and scripts use.

Every string a person reads on the web pages comes from ``i18n/<lang>.json``: a flat
object of dotted keys to ``str.format`` templates with named parameters. Korean is
the default; ``?lang=en`` (or ``?lang=ko``) switches and is remembered in the
``lang`` cookie. Keys starting with ``js.`` are also shipped to the browser scripts.

A key missing from a catalogue is never an exception at run time: the page shows
``⟦key⟧`` and :attr:`Translator.missing` records it, so a test renders every page in
both languages and fails on any marker (``tests/web/test_pages.py``).

Numbers are formatted here, not in templates: distances ``84,854 km``, prices in the
Korean way (``1,850만원``) or ``KRW 18,500,000``, block times in Korean time (UTC+9,
the legal time of every date on the ledger).
"""

from __future__ import annotations

import datetime as _dt
import json
from functools import lru_cache
from importlib import resources
from typing import Any

__all__ = ["COOKIE", "DEFAULT", "LANGS", "Translator", "catalogue", "choose"]

LANGS = ("ko", "en")
DEFAULT = "ko"
COOKIE = "lang"
_KST = _dt.timedelta(hours=9)


@lru_cache(maxsize=len(LANGS))
def catalogue(lang: str) -> dict[str, str]:
    """The messages of ``lang`` (one of :data:`LANGS`); ValueError for another language."""
    if lang not in LANGS:
        raise ValueError(f"no catalogue for {lang!r}")
    text = resources.files("carledger.web").joinpath("i18n", f"{lang}.json").read_text("utf-8")
    data = json.loads(text)
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"i18n/{lang}.json is an object of strings")
    return data


def choose(query: str | None, cookie: str | None) -> tuple[str, bool]:
    """``(language, remember)``: the query's language wins and is remembered in the cookie."""
    if query in LANGS:
        return str(query), True
    if cookie in LANGS:
        return str(cookie), False
    return DEFAULT, False


class Translator:
    """``t(key, **params)`` for one language, with the number and time formats of it."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.messages = catalogue(lang)
        self.missing: set[str] = set()

    def __call__(self, key: str, /, **params: Any) -> str:
        template = self.messages.get(key)
        if template is None:
            self.missing.add(key)
            return f"⟦{key}⟧"
        if not params:
            return template
        try:
            return template.format_map(params)
        except (KeyError, IndexError, ValueError):
            self.missing.add(f"{key} (parameters)")
            return f"⟦{key}⟧"

    def has(self, key: str) -> bool:
        return key in self.messages

    def maybe(self, key: str, fallback: str) -> str:
        """The message of ``key`` if the catalogue has it, else ``fallback`` as is."""
        return self.messages.get(key, fallback)

    # -- formats ---------------------------------------------------------------------

    @staticmethod
    def number(value: int) -> str:
        return f"{value:,}"

    def km(self, value: int) -> str:
        return self("fmt.km", n=f"{value:,}")

    def price(self, krw: int) -> str:
        """Korean prices read in 만원 (10,000 KRW) when they are whole 만원."""
        if self.lang == "ko" and krw % 10_000 == 0 and krw >= 10_000:
            return self("fmt.price_man", n=f"{krw // 10_000:,}")
        return self("fmt.price", n=f"{krw:,}")

    @staticmethod
    def time(text: str | None) -> str:
        """A UTC time (``...Z``) as Korean time ``YYYY-MM-DD HH:MM KST``; '' for None."""
        if not text:
            return ""
        try:
            moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return text
        return (moment.astimezone(_dt.UTC) + _KST).strftime("%Y-%m-%d %H:%M KST")

    def js_messages(self) -> dict[str, str]:
        """The messages the browser scripts use (keys ``js.*``)."""
        return {k: v for k, v in self.messages.items() if k.startswith("js.")}
