"""One-time codes that prove a customer owns a phone number.

Codes live in Redis, hashed with the secret key, with a TTL and a bounded number of tries.
Delivery is pluggable: the default sender writes the code to the log (the laptop's SMS gateway);
a brand plugs in its SMS provider by passing another ``CodeSender``.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from typing import Callable, Protocol

from redis import Redis

log = logging.getLogger(__name__)


class CodeSender(Protocol):
    def send(self, phone: str, code: str) -> None: ...


class LogCodeSender:
    """Writes the code to the service log (the phone number is masked there)."""

    def send(self, phone: str, code: str) -> None:
        log.warning("one-time code for %s: %s", phone, code)


class MemoryCodeSender:
    """Keeps the last code per phone: for tests and demos."""

    def __init__(self) -> None:
        self.codes: dict[str, str] = {}

    def send(self, phone: str, code: str) -> None:
        self.codes[phone] = code


class OneTimeCodes:
    """Issue and check codes per conversation. Redis errors propagate: binding needs Redis."""

    def __init__(self, redis: Redis, secret: str, sender: CodeSender, ttl: int, max_attempts: int) -> None:
        self.redis, self.secret, self.sender = redis, secret.encode(), sender
        self.ttl, self.max_attempts = ttl, max_attempts

    def _key(self, conversation_id: int) -> str:
        return f"crmbot:otp:{conversation_id}"

    def _hash(self, phone: str, code: str) -> str:
        return hmac.new(self.secret, f"{phone}:{code}".encode(), hashlib.sha256).hexdigest()

    def issue(self, conversation_id: int, phone: str) -> Callable[[], None]:
        """Keep a new code for ``phone`` (hashed, in Redis) and return its delivery, for the caller
        to run once its transaction has committed: the sender is an outside service."""
        code = f"{secrets.randbelow(10**6):06d}"
        record = {"phone": phone, "hash": self._hash(phone, code), "left": self.max_attempts}
        self.redis.set(self._key(conversation_id), json.dumps(record), ex=self.ttl)
        return lambda: self.sender.send(phone, code)

    def check(self, conversation_id: int, phone: str, code: str) -> int:
        """-1 when the code is right (and used up); otherwise the tries left (0 = start again)."""
        raw = self.redis.get(self._key(conversation_id))
        record = json.loads(raw) if raw else None
        if record is None or record["phone"] != phone:
            return 0
        if hmac.compare_digest(record["hash"], self._hash(phone, code)):
            self.redis.delete(self._key(conversation_id))
            return -1
        record["left"] -= 1
        if record["left"] <= 0:
            self.redis.delete(self._key(conversation_id))
            return 0
        self.redis.set(self._key(conversation_id), json.dumps(record), keepttl=True)
        return record["left"]
