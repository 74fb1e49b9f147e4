"""The console's Chinese catalog: every string the code and templates mark is translated, and the
compiled catalog the app loads (messages.mo) is the one built from messages.po."""
from __future__ import annotations

import io
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "web" / "translations" / "zh" / "LC_MESSAGES"


def marked() -> set[str]:
    method_map = [("web/**.py", "python"), ("web/templates/**.html", "jinja2")]
    keywords = {"_": None, "gettext": None, "_l": None, "lazy_gettext": None}
    return {message for _, _, message, _, _ in extract_from_dir(str(ROOT), method_map, keywords=keywords)
            if isinstance(message, str)}


def test_every_marked_string_has_a_chinese_translation() -> None:
    catalog = read_po((CATALOG / "messages.po").open("rb"))
    translated = {m.id for m in catalog if m.id and m.string}
    assert marked() - translated == set()


def test_the_compiled_catalog_is_up_to_date() -> None:
    built = io.BytesIO()
    write_mo(built, read_po((CATALOG / "messages.po").open("rb")))
    built.seek(0)
    shipped = read_mo((CATALOG / "messages.mo").open("rb"))
    assert {m.id: m.string for m in read_mo(built) if m.id} == {m.id: m.string for m in shipped if m.id}
