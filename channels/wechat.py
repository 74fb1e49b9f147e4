"""WeChat Official Account (公众号): verify, parse, passive reply, customer-service send.

Built on wechatpy (parser, message classes, replies, AES crypto, client). Two things are done
here rather than in wechatpy: signatures are compared in constant time (wechatpy uses ``!=``),
and the access-token URL follows ``CRMBOT_WECHAT_API_BASE`` (wechatpy hardcodes it), so tests
and staging can point the real client at a local fake server.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import re
import time
from datetime import datetime, timezone
from typing import Any, Callable, Mapping
from xml.parsers.expat import ExpatError

import requests
import xmltodict
from redis import Redis
from urllib3.exceptions import ConnectTimeoutError
from wechatpy import WeChatClient, parse_message
from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.exceptions import WeChatClientException
from wechatpy.replies import TextReply
from wechatpy.session.redisstorage import RedisStorage
from wechatpy.utils import to_text

from channels import base
from channels.base import InboundMessage, MalformedMessage, OutboundMessage, SignatureError

log = logging.getLogger(__name__)

NAME = "wechat"
# WeChat error codes that change what we do (全局返回码).
TOKEN_INVALID_CODES = frozenset({40001, 40014, 42001})
WINDOW_CLOSED = 45015  # 48 hours since the customer's last message: cannot send now
QUOTA_EXCEEDED = 45047  # too many customer-service messages to this customer


def signature(*parts: str) -> str:
    """WeChat's signature: SHA-1 of the parts sorted and concatenated."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


# Characters XML 1.0 cannot carry at all, even inside CDATA.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def cdata_text(text: str) -> str:
    """``text`` made safe inside ``<![CDATA[...]]>``: a ``]]>`` in customer text would end the
    section early and break the whole reply, so it is split across two sections."""
    return _XML_INVALID.sub("", text).replace("]]>", "]]]]><![CDATA[>")


def _same(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


class WeChatChannel:
    """The inbound side of one Official Account: webhook verification, parsing, passive replies."""

    name = NAME

    def __init__(self, token: str, app_id: str, aes_key: str | None = None,
                 timestamp_window: int = 300, clock: Callable[[], float] = time.time) -> None:
        self.token = token
        self.app_id = app_id
        self.aes_key = aes_key
        self.timestamp_window = timestamp_window
        self.clock = clock
        # PrpCrypto wants the decoded 32-byte key; wechatpy's WeChatCrypto does this decoding.
        self._crypto_key = WeChatCrypto(token, aes_key, app_id).key if aes_key else None

    @property
    def safe_mode(self) -> bool:
        return self._crypto_key is not None

    def _check_signed(self, args: Mapping[str, str]) -> None:
        timestamp, nonce = args.get("timestamp", ""), args.get("nonce", "")
        if not _same(signature(self.token, timestamp, nonce), args.get("signature")):
            raise SignatureError("bad signature")
        try:
            skew = abs(self.clock() - int(timestamp))
        except ValueError:
            raise SignatureError("bad timestamp") from None
        if skew > self.timestamp_window:
            raise SignatureError(f"timestamp outside the {self.timestamp_window}s window")

    def verify_url(self, args: Mapping[str, str]) -> str:
        """GET verification when the URL is configured on mp.weixin.qq.com: return ``echostr``."""
        self._check_signed(args)
        return args.get("echostr", "")

    def parse(self, args: Mapping[str, str], body: bytes) -> InboundMessage:
        """Verify a pushed message (signature, timestamp, AES in safe mode) and normalize it."""
        self._check_signed(args)
        xml = self._read_xml(body)
        if self.safe_mode:
            xml = self._decrypt(args, xml)
        try:
            message = parse_message(xml)
        except (ExpatError, KeyError, AttributeError, TypeError, ValueError) as exc:
            raise MalformedMessage(f"not a WeChat message: {exc.__class__.__name__}") from None
        if message is None:
            raise MalformedMessage("empty message")
        inbound = self._normalize(message, xml)
        if self.safe_mode:  # msg_signature covers the encrypted body
            return inbound
        # Plain mode signs only the token, timestamp and nonce: a captured query string would carry
        # any body, for any openid, while its timestamp is in the window. The store keeps which
        # payload each signed query came with, and refuses it with another.
        return dataclasses.replace(inbound, push_key=f"{args.get('timestamp', '')}:{args.get('nonce', '')}")

    @staticmethod
    def _read_xml(body: bytes) -> str:
        try:
            xml = body.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedMessage("body is not UTF-8") from None
        if not xml.strip():
            raise MalformedMessage("empty body")
        # WeChat never sends a DTD; refusing one closes entity-expansion attacks before expat runs.
        if "<!DOCTYPE" in xml.upper() or "<!ENTITY" in xml.upper():
            raise MalformedMessage("XML with a DTD or entity declaration")
        return xml

    def _decrypt(self, args: Mapping[str, str], xml: str) -> str:
        try:
            envelope = xmltodict.parse(xml)["xml"]
            encrypted = envelope["Encrypt"]
        except (ExpatError, KeyError, TypeError) as exc:
            raise MalformedMessage(f"not an encrypted WeChat message: {exc.__class__.__name__}") from None
        if not isinstance(encrypted, str):
            raise MalformedMessage("Encrypt is not a text")
        expected = signature(self.token, args.get("timestamp", ""), args.get("nonce", ""), encrypted)
        if not _same(expected, args.get("msg_signature")):
            raise SignatureError("bad msg_signature")
        try:
            return to_text(PrpCrypto(self._crypto_key).decrypt(encrypted, self.app_id))
        except Exception as exc:  # noqa: BLE001 - any failure to decrypt means the payload is unusable
            raise MalformedMessage(f"cannot decrypt: {exc.__class__.__name__}") from None

    def _normalize(self, message: Any, xml: str) -> InboundMessage:
        data: Mapping[str, Any] = message._data  # wechatpy keeps the whole parsed payload here
        user, account = _text(data.get("FromUserName")), _text(data.get("ToUserName"))
        if not user or not account:
            raise MalformedMessage("FromUserName and ToUserName are required")
        try:
            created = int(data.get("CreateTime") or 0)
        except (TypeError, ValueError):
            raise MalformedMessage("CreateTime is not a number") from None
        try:
            sent_at = datetime.fromtimestamp(created, timezone.utc)
        except (OverflowError, OSError, ValueError):  # before year 1 or after 9999
            raise MalformedMessage("CreateTime is out of range") from None
        kind, text, attributes = _classify(message, data)
        msg_id = _text(data.get("MsgId") or data.get("MsgID"))
        if msg_id:
            dedupe = f"msg:{msg_id}"
        else:
            # Events carry no MsgId; WeChat's own advice is FromUserName + CreateTime (+ event).
            event = _text(data.get("Event")) or _text(data.get("MsgType"))
            dedupe = f"evt:{user}:{created}:{event}:{_text(data.get('EventKey'))}"
        return InboundMessage(
            channel=NAME, account=account, external_user_id=user, dedupe_key=dedupe, kind=kind,
            sent_at=sent_at, text=text,
            external_message_id=msg_id or None, attributes=attributes, raw=xml,
        )

    def render_reply(self, inbound: InboundMessage, text: str, args: Mapping[str, str]) -> str:
        """A passive reply to ``inbound`` (encrypted in safe mode); empty text answers ``success``."""
        if not text:
            return "success"
        reply = TextReply(source=inbound.account, target=inbound.external_user_id, content=cdata_text(text),
                          time=int(self.clock())).render()
        if not self.safe_mode:
            return reply
        return encrypt_xml(self.token, self._crypto_key, self.app_id, reply,
                           args.get("nonce", ""), str(int(self.clock())))


def encrypt_xml(token: str, key: bytes, app_id: str, xml: str, nonce: str, timestamp: str) -> str:
    """Wrap ``xml`` in WeChat's encrypted envelope (used for replies and by simulated pushes)."""
    encrypted = to_text(PrpCrypto(key).encrypt(xml, app_id))
    return (f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt>"
            f"<MsgSignature><![CDATA[{signature(token, timestamp, nonce, encrypted)}]]></MsgSignature>"
            f"<TimeStamp>{timestamp}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>")


def _classify(message: Any, data: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """Map a wechatpy message or event to (kind, text, attributes)."""
    kind = f"event:{message.event}" if message.type == "event" else message.type
    if kind == "text":
        return base.TEXT, _text(message.content), {}
    if kind == "image":
        return base.IMAGE, "", {"media_id": message.media_id, "pic_url": message.image}
    if kind == "voice":
        # With speech recognition switched on, WeChat sends the transcript: the bot can read it.
        return base.VOICE, _text(message.recognition), {"media_id": message.media_id, "format": message.format}
    if kind in ("video", "shortvideo"):
        return base.VIDEO, "", {"media_id": message.media_id, "thumb_media_id": message.thumb_media_id,
                                "short": kind == "shortvideo"}
    if kind == "location":
        return base.LOCATION, _text(message.label), {
            "latitude": message.location_x, "longitude": message.location_y,
            "scale": message.scale, "label": message.label}
    if kind == "link":
        return base.LINK, _text(message.title), {
            "title": message.title, "description": message.description, "url": message.url}
    if kind == "event:subscribe":
        return base.SUBSCRIBE, "", {"scene": None}
    if kind == "event:subscribe_scan":  # wechatpy strips the qrscene_ prefix
        return base.SUBSCRIBE, "", {"scene": message.scene_id, "ticket": message.ticket}
    if kind == "event:scan":
        return base.SCAN, "", {"scene": message.scene_id, "ticket": message.ticket}
    if kind == "event:unsubscribe":
        return base.UNSUBSCRIBE, "", {}
    if kind == "event:click":
        return base.MENU_CLICK, "", {"key": message.key}
    if kind == "event:view":
        return base.MENU_VIEW, "", {"url": message.url}
    if kind == "event:location":
        return base.LOCATION_REPORT, "", {"latitude": message.latitude, "longitude": message.longitude,
                                          "precision": message.precision}
    return base.UNKNOWN, "", {"msg_type": _text(data.get("MsgType")), "event": _text(data.get("Event"))}


class _BrandClient(WeChatClient):
    """wechatpy's client with a configurable API base, including the token URL."""

    def __init__(self, api_base: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.API_BASE_URL = api_base

    def fetch_access_token(self) -> dict:
        return self._fetch_access_token(
            url=self.API_BASE_URL + "token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret})


class WeChatSender:
    """The outbound side: customer-service messages (``message/custom/send``).

    The access token lives in Redis (wechatpy ``RedisStorage``) so every web and worker process
    shares one token; WeChat invalidates the previous token whenever a new one is fetched.
    """

    def __init__(self, app_id: str, app_secret: str, api_base: str, redis: Redis, timeout: float = 10) -> None:
        self.client = _BrandClient(api_base, app_id, app_secret, session=RedisStorage(redis, prefix="crmbot:wechat"),
                                   timeout=timeout, auto_retry=False)

    def send(self, message: OutboundMessage) -> None:
        """Send one text; refresh the token once on 40001/42001; raise a ``SendFailed`` kind.

        ``SendOutcomeUnknown`` when the request may have reached WeChat but no answer came back.
        WeChat's API takes no idempotency key, so ``message.idempotency_key`` is only logged: the
        outbox's lease is what keeps a message from being sent twice."""
        self._token()
        for attempt in (1, 2):
            try:
                self.client.message.send_text(message.external_user_id, message.text)
                log.info("wechat message %s sent", message.idempotency_key)
                return
            except WeChatClientException as exc:
                code = exc.errcode
                if code in TOKEN_INVALID_CODES and attempt == 1:
                    log.info("wechat access token rejected (%s), fetching a new one", code)
                    self._token(refresh=True)
                    continue
                if code == WINDOW_CLOSED:
                    raise base.RecipientUnreachable(
                        "cannot reach the customer: more than 48 hours since their last message (45015)",
                        code) from None
                if code == QUOTA_EXCEEDED:
                    raise base.QuotaExceeded(
                        "cannot reach the customer: customer-service message quota used up (45047)", code) from None
                status = exc.response.status_code if code is None and exc.response is not None else 0
                if status >= 500:  # a gateway's error may hide a message WeChat took
                    raise base.SendOutcomeUnknown(f"wechat answered HTTP {status}: the message may have "
                                                  "reached the customer") from None
                raise base.SendFailed(f"wechat refused the message: {code or status} {exc.errmsg or ''}",
                                      code) from None
            except requests.RequestException as exc:
                if _never_connected(exc):
                    raise base.SendFailed(f"wechat API unreachable: {exc.__class__.__name__}") from None
                raise base.SendOutcomeUnknown(f"no answer from the wechat API ({exc.__class__.__name__}): "
                                              "the message may have reached the customer") from None

    def _token(self, refresh: bool = False) -> None:
        """The shared access token, fetched when missing, expired or rejected. Nothing of the
        message is sent yet, so any failure here is a plain ``SendFailed``, worth retrying."""
        try:
            if refresh:
                self.client.fetch_access_token()
            else:
                self.client.access_token  # wechatpy fetches it when the shared one is missing or expired
        except WeChatClientException as exc:
            raise base.SendFailed(f"wechat refused the access token request: {exc.errcode} {exc.errmsg}",
                                  exc.errcode) from None
        except requests.RequestException as exc:
            raise base.SendFailed(f"wechat API unreachable: {exc.__class__.__name__}") from None


def _never_connected(exc: requests.RequestException) -> bool:
    """Whether the request failed before a connection was made, so WeChat cannot have it."""
    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    return isinstance(exc, requests.ConnectTimeout) or isinstance(reason, ConnectTimeoutError)
