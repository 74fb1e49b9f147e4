"""Process logging: one format, and phone numbers masked before anything is written."""
from __future__ import annotations

import logging
import re

# Mainland mobile numbers (1[3-9]xxxxxxxxx), not when part of a longer digit run (order ids).
PHONE = re.compile(r"(?<!\d)(1[3-9]\d)(\d{4})(\d{4})(?!\d)")


def mask_phones(text: str) -> str:
    return PHONE.sub(r"\1****\3", text)


class PhoneMaskFilter(logging.Filter):
    """Rewrites each record's final message with phone numbers masked (138****5678)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_phones(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"))
    handler.addFilter(PhoneMaskFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
