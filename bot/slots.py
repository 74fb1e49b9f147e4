"""What a flow's slots accept, taken from wherever the customer wrote it: pure functions.

A slot takes only a plausible value (a name is not a sentence), and several slots may come in
one message ("我姓李，手机139…，想谈谈加盟").
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Sequence

from nlp.text import find_terms, normalize

PHONE = re.compile(r"(?<!\d)(?:\+?86[\s-]?)?(1[3-9]\d)[\s-]?(\d{4})[\s-]?(\d{4})(?!\d)")
NONE_WORDS = ("无", "没有", "暂无", "没", "没有订单号", "没订单号", "不知道", "忘了", "找不到", "no", "none", "n/a",
              "nope", "dont have", "don't have", "没有了", "不用")
_ORDER_LABEL = re.compile(r"(?:订单号|订单编号|订单|单号|order\s*(?:no\.?|number|#)?|#)\s*[:：是为]?\s*([a-z0-9][a-z0-9-]{3,})",
                          re.IGNORECASE)
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{4,}")
# A number written in groups, as apps show it and customers copy it: "8823 4410 9921 0033".
_GROUPED = re.compile(r"(?<!\d)\d{2,}(?: \d{2,}){1,7}(?!\d)")
_HONORIFIC = ("先生", "女士", "小姐", "老师", "经理", "总", "姐", "哥")
_NAME_SAID = (re.compile(r"(?:我姓|免贵姓|本人姓)\s*([\u4e00-\u9fff])(?:\s*[，,]?\s*(先生|女士|小姐))?"),
              re.compile(r"(?:我叫|我是|叫我|称呼我|联系人)\s*[:：]?\s*([\u4e00-\u9fff]{1,3}(?:先生|女士|小姐|老师|经理|总)?)"),
              re.compile(r"\b(?:my name is|i am|i'm|this is|call me)\s+([a-z][a-z'-]+(?:\s+[a-z][a-z'-]+)?)",
                         re.IGNORECASE))
# Words that make a text a sentence, not a name.
_NOT_NAME = ("吗", "呢", "么", "什么", "怎么", "想", "要", "请问", "可以", "能", "的", "了", "不", "没", "是", "我",
             "你", "有", "在", "吧", "啊", "好", "价", "加盟", "多少", "哪", "谢", "投诉", "积分", "人工", "客服")
_NOT_EN_NAME = {"i", "want", "need", "the", "a", "is", "what", "how", "can", "my", "your", "price", "hi", "hello",
                "yes", "no", "ok", "thanks", "please", "order", "franchise", "help"}
_CN_NUMBERS = {"十": 10, "二十": 20, "三十": 30, "五十": 50, "几十": 20, "上百": 100, "一百": 100, "几百": 200,
               "上千": 1000, "一千": 1000}
_QUANTITY = re.compile(r"(\d+|[一二两三四五六七八九十几上百千]+)\s*(?:多)?\s*"
                       r"(杯|份|箱|盒|件|个人|人|位|袋|斤|公斤|kg|包|套|瓶|桶|cups?|boxes|box|bags?|people|persons?|guests)",
                       re.IGNORECASE)


def mobile(text: str) -> str | None:
    """A mainland mobile number anywhere in ``text`` (spaces, dashes, +86 allowed), or None."""
    found = PHONE.search(normalize(text))
    return "".join(found.groups()) if found else None


@lru_cache(maxsize=16)
def _formats(formats: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(pattern, re.IGNORECASE) for pattern in formats)


def order_number(text: str, formats: Sequence[str]) -> str | None:
    """The first order number in ``text`` that has one of the brand's ``formats`` (regular
    expressions of a whole number): after a label ("订单号：…", "单号 …", "order #…") or bare.
    A mobile number is never an order number."""
    clean = unicodedata_clean(text)
    patterns = _formats(tuple(formats))
    labelled = [m.group(1) for m in _ORDER_LABEL.finditer(clean)]
    grouped = [m.replace(" ", "") for m in _GROUPED.findall(clean)]
    for candidate in labelled + grouped + _TOKEN.findall(clean):
        candidate = candidate.strip("-")
        if mobile(candidate) == candidate:
            continue
        if any(p.fullmatch(candidate) for p in patterns):
            return candidate.upper() if not candidate.isdigit() else candidate
    return None


def unicodedata_clean(text: str) -> str:
    """Full-width digits and letters to half-width, case kept (order numbers keep their case)."""
    return unicodedata.normalize("NFKC", text)


def mentions_order(text: str) -> bool:
    """An order number is given ("单号 12345", a bare run of digits), whatever its form."""
    clean = unicodedata_clean(text)
    bare = re.fullmatch(r"\s*[A-Za-z]{0,3}[\d-]{5,}\s*", clean) or _GROUPED.fullmatch(clean.strip())
    return bool(_ORDER_LABEL.search(clean)) or bool(bare and not mobile(clean))


def says_none(text: str) -> bool:
    """"无", "没有", "none": the customer has no such thing to give."""
    clean = "".join(ch for ch in normalize(text) if ch.isalnum() or ch in " '/")
    return clean.strip() in NONE_WORDS


def person_name(text: str, whole: bool = False) -> str | None:
    """How the customer wants to be called, said in a sentence ("我姓李" -> 李, "我叫王芳" ->
    王芳, "my name is Amy Chen"), or, with ``whole``, a whole message that is plausibly just a
    name ("王先生", "Amy"). A sentence, a number or a question is not a name."""
    clean = unicodedata_clean(text).strip()
    for pattern in _NAME_SAID:
        found = pattern.search(clean)
        if found:
            name = "".join(part for part in found.groups() if part)
            if name.lower() not in _NOT_EN_NAME and not any(w in name for w in ("什么", "怎么", "想")):
                return name.title() if name.isascii() else name
    if not whole:
        return None
    bare = clean.strip(" 。.!！~～")
    if re.fullmatch(r"[\u4e00-\u9fff]{1,4}", bare):
        core = bare
        for honorific in _HONORIFIC:
            if core.endswith(honorific) and len(core) > len(honorific):
                core = core[: -len(honorific)]
                break
        if 1 <= len(core) <= 3 and not any(w in core for w in _NOT_NAME):
            return bare
        return None
    words = bare.split()
    if 1 <= len(words) <= 3 and all(re.fullmatch(r"[A-Za-z][A-Za-z'-]{0,19}", w) for w in words) \
            and not {w.lower() for w in words} & _NOT_EN_NAME:
        return " ".join(w.capitalize() for w in words)
    return None


def quantity(text: str) -> int:
    """The largest count of cups, boxes or people in ``text`` ("50杯", "二十份", "100 cups"), or 0."""
    best = 0
    for number, _unit in _QUANTITY.findall(normalize(text)):
        value = int(number) if number.isdigit() else _CN_NUMBERS.get(number, 0)
        best = max(best, value)
    return best


def business_terms(text: str, business_words: Sequence[str]) -> list[str]:
    return find_terms(text, business_words)


def is_business(text: str, business_words: Sequence[str], bulk_quantity: int) -> bool:
    """Purchase intent in quantity, franchise, wholesale or cooperation: a lead, not a shopper's
    price question."""
    return bool(find_terms(text, business_words)) or quantity(text) >= bulk_quantity
