"""nlp/ as pure functions: tokens, keywords, watch terms, the linear model, and bad input."""
from __future__ import annotations

import math

import pytest

from nlp import analysis
from nlp import tokenize as tok
from nlp.keywords import keywords, watch_terms
from nlp.model import LinearModel, Scorer, features
from nlp.text import find_terms, normalize


@pytest.fixture(scope="module", autouse=True)
def loaded() -> None:
    analysis.load(["茶咖坊", "年货节"])


def test_brand_words_stay_whole_and_emoticons_are_tokens() -> None:
    tokens = tok.tokenize("茶咖坊的年货节活动真不错[赞]")
    assert "茶咖坊" in tokens and "年货节" in tokens and "[赞]" in tokens


def test_fast_cut_is_jiebas_cut() -> None:
    """Our no-HMM route search must give exactly jieba's words, brand words included, and follow
    words added later (which change every probability)."""
    import jieba

    from nlp.evaluate import load_labeled

    ours, reference = tok._tokenizer_class()(), jieba.Tokenizer()
    for tokenizer in (ours, reference):
        for word in ("茶咖坊", "年货节"):
            tokenizer.add_word(word, freq=2000)
    texts = [normalize(row["text"]) for row in load_labeled()] + ["abc12 茶咖坊x9 的 c++ 年货节!!", "龘龘"]
    assert [ours.lcut(t, HMM=False) for t in texts] == [reference.lcut(t, HMM=False) for t in texts]
    assert ours.lcut("我要抹茶拿铁", HMM=False) != ["我要", "抹茶拿铁"]
    for tokenizer in (ours, reference):
        tokenizer.add_word("抹茶拿铁", freq=50_000)
    assert ours.lcut("我要抹茶拿铁", HMM=False) == reference.lcut("我要抹茶拿铁", HMM=False)
    assert "抹茶拿铁" in ours.lcut("我要抹茶拿铁", HMM=False)


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


def test_a_term_with_a_gap_matches_its_parts_in_order_within_a_clause() -> None:
    assert find_terms("喝完肚子一直疼，拉了两天", ["肚子…疼", "拉了...天"]) == ["肚子一直疼", "拉了两天"]
    assert find_terms("肚子疼", ["肚子…疼"]) == ["肚子疼"]  # the gap may be empty
    assert not find_terms("肚子还好。疼的是头", ["肚子…疼"])  # not across a clause
    assert not find_terms("疼的是肚子", ["肚子…疼"])  # not out of order
    assert not find_terms("肚子在下午三点以后开始疼", ["肚子…疼"])  # not further than GAP_CHARS
    assert find_terms("It made my little boy sick.", ["made...sick"]) == ["made my little boy sick"]
    assert not find_terms("it made the day, not sick", ["made...sick"])


def test_linear_model_round_trip() -> None:
    model = LinearModel(("neg", "pos"), (0.0, 0.0), {"w:好": (-1.0, 1.0)})
    again = LinearModel.from_json(model.to_json())
    p = Scorer.join({"sentiment": again}).probabilities({"w:好": 1.0, "unknown": 1.0})["sentiment"]
    assert p["pos"] > 0.8 and abs(sum(p.values()) - 1) < 1e-9


def test_scorer_scores_each_task_as_if_alone() -> None:
    sentiment = LinearModel(("neg", "pos"), (0.1, -0.1), {"w:好": (-1.0, 1.0), "w:差": (2.0, -2.0)})
    intent = LinearModel(("faq", "lead", "praise"), (0.0, 0.5, 0.0), {"w:好": (0.0, 0.0, 3.0), "w:买": (0, 2, 0)})
    joint = Scorer.join({"sentiment": sentiment, "intent": intent})
    p = joint.probabilities({"w:好": 1.0, "w:买": 0.5})
    # by hand: sentiment scores (0.1 - 1, -0.1 + 1); intent scores (0, 0.5 + 1, 3)
    assert p["sentiment"]["pos"] == pytest.approx(1 / (1 + math.exp(-1.8)))
    exps = [math.exp(0), math.exp(1.5), math.exp(3)]
    assert p["intent"]["lead"] == pytest.approx(exps[1] / sum(exps))
    assert Scorer.join({}).probabilities({"w:好": 1.0}) == {}


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
    # Short complaints are complaints: length alone must not make a message chitchat.
    assert analysis.intent("订单一直没到").name == "complaint"
    assert analysis.intent("我要退款").name == "complaint"
    # Whom a post addresses is not what it says.
    assert analysis.intent("worst coffee ever, I want a refund").name == "complaint"
    assert analysis.intent("the barista was rude to me").name == "complaint"
    assert analysis.intent("do you do catering for 50 people").name == "lead"
    assert analysis.analyze("@CafeTeaHouse what time do you close").intent.name == "faq"


def test_traditional_chinese_is_simplified() -> None:
    assert normalize("這個產品的服務態度很差") == "这个产品的服务态度很差"
    assert analysis.sentiment("這家店的服務太差了，再也不來了").label == "neg"
