"""config/listening.yaml's polling intervals: one for all channels, and a channel's own."""
from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError
from config.listening import LISTENING_FILE, load_listening


def test_weibo_polls_on_its_own_interval_and_twitter_on_the_shared_one() -> None:
    rules = load_listening()
    assert rules.interval_for("weibo") == rules.channel_intervals["weibo"] != rules.interval_seconds
    assert rules.interval_for("twitter") == rules.interval_seconds


@pytest.mark.parametrize("block, problem", [
    ("  channel_interval_seconds:\n    weibo: 5\n", r"'polling.channel_interval_seconds.weibo' must be between 10"),
    ("  channel_interval_seconds:\n    myspace: 60\n", r"'polling.channel_interval_seconds' must map weibo or twitter"),
    ("  channel_interval_seconds: 60\n", r"'polling.channel_interval_seconds' must map"),
])
def test_a_bad_channel_interval_is_a_clear_error(tmp_path: Path, block: str, problem: str) -> None:
    text = LISTENING_FILE.read_text(encoding="utf-8")
    start = text.index("  channel_interval_seconds:")
    end = text.index("\n", text.index("weibo:", start)) + 1
    bad = tmp_path / "listening.yaml"
    bad.write_text(text[:start] + block + text[end:], encoding="utf-8")
    with pytest.raises(ConfigError, match=problem):
        load_listening(bad)


def test_a_social_lead_is_filed_under_the_product_or_campaign_not_the_brand() -> None:
    from workers.listening import lead_source

    kinds = {"茶咖坊": "brand", "桂花乌龙拿铁": "product", "#秋日限定#": "campaign", "heytea": "competitor"}
    assert lead_source(["桂花乌龙拿铁", "茶咖坊"], kinds, ["团购"]) == ("桂花乌龙拿铁", None)
    assert lead_source(["#秋日限定#", "茶咖坊"], kinds) == ("#秋日限定#", "#秋日限定#")
    assert lead_source(["茶咖坊"], kinds, ["加盟"]) == ("加盟", None)  # the lead word says more than the brand
    assert lead_source(["茶咖坊"], kinds) == ("茶咖坊", None)
    assert lead_source([], kinds, [], ["奶茶"]) == ("奶茶", None)
    assert lead_source(["gone term"], {}, []) == ("gone term", None)  # a term since removed counts as the brand's
