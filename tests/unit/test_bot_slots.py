"""Slots: order numbers, phones, names and quantities taken from wherever the customer wrote them."""
from __future__ import annotations

import pytest

from bot import slots
from bot.flows import describes_problem

FORMATS = ("\\d{12,24}", "SO\\d{8}-\\d{3,6}", "[A-Z]{2}\\d{5,12}")


@pytest.mark.parametrize("text, order", [
    ("订单号：202611271530123456，奶茶里有头发", "202611271530123456"),
    ("订单号:202611271530123456", "202611271530123456"),
    ("单号 SO20261120-8831 杯子破了", "SO20261120-8831"),
    ("我的单号是so20261120-8831", "SO20261120-8831"),
    ("202611271530123456 这单少了一杯", "202611271530123456"),
    ("昨天那单（２０２６１１２７１５３０１２３４５６）洒了", "202611271530123456"),
    ("小票号LH88021，店员态度太差", "LH88021"),
    ("order #202611271530123456 arrived cold", "202611271530123456"),
    ("订单号是 8823 4410 9921 0033", "8823441099210033"),  # in groups, as the app shows it
    ("8823 4410 9921 0033", "8823441099210033"),
    ("我手机13812345678，奶茶是酸的", None),  # a mobile number is never an order number
    ("手机 138 1234 5678，奶茶是酸的", None),  # ... nor in groups
    ("买了 2 杯 30 块的", None),
    ("订单号 12345", None),  # not a form the brand issues
    ("奶茶里有异物", None),
    ("", None),
])
def test_order_number_is_taken_from_wherever_it_is_written(text: str, order: str | None) -> None:
    assert slots.order_number(text, FORMATS) == order


@pytest.mark.parametrize("text, mentioned", [
    ("订单号 12345", True), ("单号是 998", False), ("12345678", True), ("13812345678", False), ("没有", False),
])
def test_an_order_number_in_another_form_is_noticed(text: str, mentioned: bool) -> None:
    assert slots.mentions_order(text) is mentioned


@pytest.mark.parametrize("text, phone", [
    ("13812345678", "13812345678"), ("138 1234 5678", "13812345678"), ("+86 138-1234-5678", "13812345678"),
    ("我姓李，手机13912345678，想谈谈加盟", "13912345678"), ("１３９１２３４５６７８", "13912345678"),
    ("12345", None), ("23812345678", None), ("订单202611271530123456", None),
])
def test_mobile_anywhere_in_a_message(text: str, phone: str | None) -> None:
    assert slots.mobile(text) == phone


@pytest.mark.parametrize("text, whole, name", [
    ("我姓李，手机139…，想谈谈加盟", False, "李"),
    ("免贵姓王", False, "王"),
    ("我叫张伟", False, "张伟"),
    ("我是刘女士", False, "刘女士"),
    ("my name is amy chen", False, "Amy Chen"),
    ("王先生", True, "王先生"),
    ("李女士。", True, "李女士"),
    ("小张", True, "小张"),
    ("Amy", True, "Amy"),
    ("我想问一下价格", True, None),  # a sentence is not a name
    ("13812345678", True, None),  # a number is not a name
    ("你们在哪里", True, None),
    ("加盟要多少钱", True, None),
    ("I want a franchise", True, None),
    ("想了解加盟", False, None),
])
def test_a_name_is_a_name_not_a_sentence(text: str, whole: bool, name: str | None) -> None:
    assert slots.person_name(text, whole=whole) == name


@pytest.mark.parametrize("text, business", [
    ("公司团建要订50杯", True), ("想加盟", True), ("批发价怎么算", True), ("年会下午茶二十份", True),
    ("we need 100 cups for an office event", True), ("拿铁多少钱", False), ("两杯美式多少钱", False),
    ("大杯比中杯贵几块", False),
])
def test_business_versus_a_shoppers_question(text: str, business: bool) -> None:
    words = ("加盟", "批发", "团建", "年会", "franchise", "office")
    assert slots.is_business(text, words, 10) is business


@pytest.mark.parametrize("text, none", [("无", True), ("没有", True), ("None", True), ("没有订单号", True),
                                        ("有的", False), ("无糖的那杯", False)])
def test_says_none(text: str, none: bool) -> None:
    assert slots.says_none(text) is none


@pytest.mark.parametrize("text, describes", [
    ("投诉", False), ("我要投诉", False), ("我要投诉你们", False), ("I want to make a complaint", False),
    ("杯子破了", True), ("投诉店员", True), ("我昨天买的奶茶有异物", True), ("the milk was sour", True),
])
def test_describes_problem(text: str, describes: bool) -> None:
    assert describes_problem(text) is describes
