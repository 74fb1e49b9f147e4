"""nlp/ as pure functions: tokens, keywords, watch terms, the linear model, and bad input."""
from __future__ import annotations

import pytest

from nlp import analysis
from nlp import tokenize as tok
from nlp.keywords import keywords, watch_terms
from nlp.model import LinearModel, features
from nlp.text import find_terms, normalize


@pytest.fixture(scope="module", autouse=True)
def loaded() -> None:
    analysis.load(["茶咖坊", "年货节"])


def test_brand_words_stay_whole_and_emoticons_are_tokens() -> None:
    tokens = tok.tokenize("茶咖坊的年货节活动真不错[赞]")
    assert "茶咖坊" in tokens and "年货节" in tokens and "[赞]" in tokens


def test_language_and_normalization() -> None:
    assert tok.language("这家店 the coffee 很好喝") == "zh"
    assert tok.language("great coffee 好") == "en"
    assert normalize("ＡＢＣ１２３\x00\x07 ") == "abc123"


def test_keywords_put_the_brand_first_and_drop_stopwords() -> None:
    found = keywords("我们今天在茶咖坊买的拿铁咖啡太甜了，拿铁咖啡真的甜", k=3)
    assert found[0] == "茶咖坊" and "我们" not in found and "咖啡" in found


def test_watch_terms_respect_word_boundaries() -> None:
    assert watch_terms("This is Starbucks vs 瑞幸咖啡", ["hi", "starbucks", "瑞幸"]) == ["starbucks", "瑞幸"]
    assert find_terms("积分明细", ["积分", "积分明细"]) == ["积分明细"]


def test_linear_model_round_trip() -> None:
    model = LinearModel(("neg", "pos"), (0.0, 0.0), {"w:好": (-1.0, 1.0)})
    again = LinearModel.from_json(model.to_json())
    p = again.probabilities({"w:好": 1.0, "unknown": 1.0})
    assert p["pos"] > 0.8 and abs(sum(p.values()) - 1) < 1e-9


def test_negation_and_sarcasm_are_features() -> None:
    text = normalize("呵呵，一点也不好喝")
    zh = features(text, "zh", tok.tokenize(text, "zh"))
    assert zh["sarcasm"] == 1.0 and any(k.startswith("n:") for k in zh)
    en = features("not good at all", "en", tok.tokenize("not good at all", "en"))
    assert "not:good" in en and "w:good" not in en


@pytest.mark.parametrize("text", ["", "   ", "🙂🙂🙂", "我" * 10_000, "买了 latte 很 nice!!",
                                  "控制\x00字符\x1b[31m", b"\xff\xfe\xfa invalid", None, "[怒][怒]", "12345"])
def test_bad_input_has_defined_output(text) -> None:  # type: ignore[no-untyped-def]
    result = analysis.analyze(text)
    assert result.lang in ("zh", "en")
    assert result.sentiment.label in ("pos", "neu", "neg") and 0.0 <= result.sentiment.score <= 1.0
    assert 0.0 <= result.intent.confidence <= 1.0 and isinstance(result.keywords, tuple)


def test_obvious_cases() -> None:
    assert analysis.sentiment("太难喝了，再也不买了，气死我了").label == "neg"
    assert analysis.sentiment("店员小姐姐超级热情，咖啡也好喝，赞！").label == "pos"
    assert analysis.sentiment("请问几点关门？").label == "neu"
    assert analysis.sentiment("Worst service ever, 40 minutes for a latte").label == "neg"
    assert analysis.intent("我的积分还有多少").name == "points_balance"
    assert analysis.intent("想了解一下加盟条件和费用").name == "lead"


def test_traditional_chinese_is_simplified() -> None:
    assert normalize("這個產品的服務態度很差") == "这个产品的服务态度很差"
    assert analysis.sentiment("這家店的服務太差了，再也不來了").label == "neg"
