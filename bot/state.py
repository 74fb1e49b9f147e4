"""Per-conversation state in Redis with a TTL, so it survives a process restart."""
from __future__ import annotations

import json
import logging
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class ConversationStates:
    """Load and save a conversation's state; when Redis is down the bot runs stateless."""

    def __init__(self, redis: Redis, ttl: int) -> None:
        self.redis = redis
        self.ttl = ttl

    @staticmethod
    def key(conversation_id: int) -> str:
        return f"crmbot:conversation:{conversation_id}"

    def load(self, conversation_id: int) -> dict[str, Any]:
        try:
            raw = self.redis.get(self.key(conversation_id))
        except RedisError as exc:
            log.warning("conversation %s: state unavailable, answering stateless (%s)", conversation_id, exc)
            return {}
        return json.loads(raw) if raw else {}

    def save(self, conversation_id: int, state: dict[str, Any]) -> None:
        try:
            if state:
                self.redis.set(self.key(conversation_id), json.dumps(state, ensure_ascii=False), ex=self.ttl)
            else:
                self.redis.delete(self.key(conversation_id))
        except RedisError as exc:
            log.warning("conversation %s: state not saved (%s)", conversation_id, exc)
