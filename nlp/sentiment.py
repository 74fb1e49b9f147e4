"""Sentiment values, and the lexicon used when no trained model is present and to spot anger."""
from __future__ import annotations

from dataclasses import dataclass

from nlp.text import find_terms, normalize

POSITIVE = ("满意", "喜欢", "好用", "不错", "谢谢", "感谢", "赞", "棒", "好评", "开心", "推荐", "[哈哈]", "[赞]")
NEGATIVE = ("差", "烂", "垃圾", "失望", "生气", "愤怒", "坑", "骗", "恶心", "投诉", "退款", "难用", "坏了",
            "破损", "过期", "变质", "太慢", "没人管", "不理", "气死", "[怒]", "[抓狂]", "服了", "呵呵", "无语")
# Words of a customer who is angry enough that a human should answer.
STRONG = ("垃圾", "骗子", "气死", "恶心", "曝光", "12315", "起诉", "律师", "再也不", "[怒]", "scam", "never again",
          "worst", "disgusting", "furious", "lawyer")
NEGATIONS = ("不", "没", "别", "无")


@dataclass(frozen=True)
class Sentiment:
    label: str  # pos | neu | neg
    score: float  # 0 (negative) .. 1 (positive)
    strong: bool = False  # strongly negative: angry words, or negative with !!!


def is_strong(text: str, negative: bool) -> bool:
    clean = normalize(text)
    return bool(find_terms(clean, STRONG)) or (negative and clean.count("!") + clean.count("！") >= 3)


def lexicon_sentiment(text: str) -> Sentiment:
    """Score by word lists, with a negation flipping a positive word; never raises."""
    clean = normalize(text)
    if not clean:
        return Sentiment("neu", 0.5)
    pos = 0
    for word in find_terms(clean, POSITIVE):
        at = clean.find(word)
        pos += -1 if at > 0 and clean[at - 1] in NEGATIONS else 1
    neg = len(find_terms(clean, NEGATIVE))
    strong = is_strong(clean, neg > 0)
    total = pos - neg - (2 if strong else 0)
    label = "pos" if total > 0 else "neg" if total < 0 else "neu"
    return Sentiment(label, round(max(0.0, min(1.0, 0.5 + 0.15 * total)), 3), strong)
