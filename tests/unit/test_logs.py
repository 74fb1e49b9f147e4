import logging

from config.logs import PhoneMaskFilter, mask_phones


def test_mobile_numbers_are_masked_but_order_numbers_are_not() -> None:
    assert mask_phones("call 13812345678 now") == "call 138****5678 now"
    assert mask_phones("order 2026112313812345678") == "order 2026112313812345678"
    assert mask_phones("+86 15900001111.") == "+86 159****1111."


def test_filter_masks_formatted_arguments(caplog) -> None:
    logger = logging.getLogger("test.phones")
    logger.addFilter(PhoneMaskFilter())
    with caplog.at_level(logging.INFO, logger="test.phones"):
        logger.info("bind %s for %s", "13912345678", "openid")
    assert "139****5678" in caplog.text and "13912345678" not in caplog.text
