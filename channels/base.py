"""Channel-neutral value types and errors.

Every platform module turns its own payload into one ``InboundMessage`` and sends one
``OutboundMessage``; nothing above ``channels/`` sees a platform format. This package imports
neither ``bot`` nor ``crm_store``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

# Kinds of inbound messages. Anything a platform sends that we do not know is UNKNOWN: it is
# stored like everything else, never dropped.
TEXT = "text"
IMAGE = "image"
VOICE = "voice"
VIDEO = "video"
LOCATION = "location"
LINK = "link"
SUBSCRIBE = "subscribe"
UNSUBSCRIBE = "unsubscribe"
SCAN = "scan"
MENU_CLICK = "menu_click"
MENU_VIEW = "menu_view"
LOCATION_REPORT = "location_report"
UNKNOWN = "unknown"

EVENT_KINDS = frozenset({SUBSCRIBE, UNSUBSCRIBE, SCAN, MENU_CLICK, MENU_VIEW, LOCATION_REPORT})


@dataclass(frozen=True)
class InboundMessage:
    """One message or event from a customer, normalized.

    ``dedupe_key`` is unique per channel account: a platform retry of the same message has the
    same key. ``attributes`` holds the kind-specific fields (media id, coordinates, menu key,
    QR scene ...); ``raw`` is the payload exactly as received (decrypted in safe mode).
    ``push_key`` names the signed request that carried it when the signature does not cover the
    body (WeChat's plain mode): that request may only ever carry this very payload.
    """

    channel: str
    account: str
    external_user_id: str
    dedupe_key: str
    kind: str
    sent_at: datetime
    text: str = ""
    external_message_id: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    raw: str = ""
    push_key: str | None = None

    @property
    def is_event(self) -> bool:
        return self.kind in EVENT_KINDS


@dataclass(frozen=True)
class OutboundMessage:
    """A message to one customer on one channel; ``idempotency_key`` names the one logical send
    across its tries (passed to platforms that take one, logged by those that do not)."""

    channel: str
    account: str
    external_user_id: str
    text: str
    idempotency_key: str
    # A public reply (Weibo, Twitter): the ``Mention.reply_ref`` of the post or comment it
    # answers, opaque outside its channel. None = a private message to ``external_user_id``.
    reply_to: str | None = None


# Kinds of mentions.
POST = "post"
COMMENT = "comment"


@dataclass(frozen=True)
class Mention:
    """A public post or comment that mentions the brand's account (Weibo, Twitter), normalized.

    ``external_id`` is unique per channel, kept as a string (platform ids pass 2**53).
    ``created_at`` is aware UTC. ``author_*`` are None when the platform sent no author (a
    deleted or banned account). ``deleted`` marks a post withdrawn by its author: its id still
    counts for cursors, its text does not. ``truncated`` marks a long text the listing cut short.
    ``in_reply_to`` is the post a comment is under, or the post a repost quotes.
    ``reply_ref`` is what ``OutboundMessage.reply_to`` takes to answer this mention in public
    (None when it cannot be answered). ``raw`` is the platform's JSON object, re-serialized
    from the parsed answer with every id exact.
    """

    channel: str
    account: str
    external_id: str
    kind: str
    text: str
    created_at: datetime
    author_id: str | None = None
    author_screen_name: str | None = None
    author_followers: int | None = None
    author_verified: bool = False
    reposts: int = 0
    comments: int = 0
    likes: int = 0
    in_reply_to: str | None = None
    url: str | None = None
    reply_ref: str | None = None
    deleted: bool = False
    truncated: bool = False
    raw: str = ""


class ChannelError(Exception):
    """Base of every error a channel raises."""


class SignatureError(ChannelError):
    """The request is not signed by the platform (or is outside the timestamp window)."""


class MalformedMessage(ChannelError):
    """The payload cannot be read as a message of this platform."""


class SendFailed(ChannelError):
    """The platform refused or could not take an outbound message; worth retrying."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class SendOutcomeUnknown(SendFailed):
    """The request may have reached the platform, but no answer came back (a read timeout, a
    dropped connection, a gateway's 5xx): the customer may have the message. Never resent blindly."""


class RecipientUnreachable(SendFailed):
    """The customer cannot be reached now (WeChat 45015: the 48-hour window has closed)."""


class QuotaExceeded(SendFailed):
    """The platform's sending quota is used up (WeChat 45047); retrying now will not help."""


class AuthExpired(ChannelError):
    """The platform refused our access token (expired, revoked, invalid): nothing works until the
    operator sets a new one; the message names the setting. Retrying does not help."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class RateLimited(ChannelError):
    """The platform asks us to wait until ``reset_at`` (epoch seconds)."""

    def __init__(self, message: str, reset_at: float) -> None:
        super().__init__(message)
        self.reset_at = reset_at
