"""Pushes built exactly as WeChat's server builds them, and its view of our replies.

Used by ``crmbot chat`` (a terminal WeChat user), the tests and the benchmarks, so all three
talk to the real webhook with real signatures and, in safe mode, real AES.
"""
from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import xmltodict
from wechatpy.crypto import PrpCrypto
from wechatpy.utils import to_text

from channels.wechat import cdata_text, encrypt_xml, signature


def text_xml(account: str, openid: str, content: str, msg_id: int, create_time: int | None = None) -> str:
    """A customer's text message (接收普通消息 / 文本消息)."""
    return (f"<xml><ToUserName><![CDATA[{account}]]></ToUserName>"
            f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{create_time or int(time.time())}</CreateTime>"
            f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{cdata_text(content)}]]></Content>"
            f"<MsgId>{msg_id}</MsgId></xml>")


def event_xml(account: str, openid: str, event: str, key: str | None = None,
              create_time: int | None = None) -> str:
    """An event push (接收事件推送): subscribe, unsubscribe, CLICK, VIEW ..."""
    key_xml = f"<EventKey><![CDATA[{key}]]></EventKey>" if key is not None else ""
    return (f"<xml><ToUserName><![CDATA[{account}]]></ToUserName>"
            f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{create_time or int(time.time())}</CreateTime>"
            f"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event>{key_xml}</xml>")


@dataclass(frozen=True)
class WeChatServer:
    """Signs (and in safe mode encrypts) pushes for one Official Account's configuration."""

    token: str
    app_id: str
    aes_key: str | None = None

    @property
    def _key(self) -> bytes:
        return base64.b64decode((self.aes_key or "") + "=")

    def push(self, xml: str, timestamp: int | None = None, openid: str | None = None) -> tuple[str, bytes]:
        """Return (query string, body) of the POST that WeChat would send for ``xml``."""
        ts, nonce = str(timestamp or int(time.time())), secrets.token_hex(5)
        query: dict[str, Any] = {"signature": signature(self.token, ts, nonce), "timestamp": ts, "nonce": nonce}
        if openid:
            query["openid"] = openid
        body = xml
        if self.aes_key:
            body = encrypt_xml(self.token, self._key, self.app_id, xml, nonce, ts)
            query["encrypt_type"] = "aes"
            query["msg_signature"] = xmltodict.parse(body)["xml"]["MsgSignature"]
        return urlencode(query), body.encode("utf-8")

    def verification(self, echostr: str, timestamp: int | None = None) -> str:
        """The query string of WeChat's GET URL verification."""
        ts, nonce = str(timestamp or int(time.time())), secrets.token_hex(5)
        return urlencode({"signature": signature(self.token, ts, nonce), "timestamp": ts, "nonce": nonce,
                          "echostr": echostr})

    def read_reply(self, body: bytes | str) -> dict[str, Any] | None:
        """Our passive reply as WeChat reads it (decrypted in safe mode); None for ``success``/empty."""
        text = to_text(body).strip()
        if text in ("", "success"):
            return None
        data = xmltodict.parse(text)["xml"]
        if self.aes_key:
            encrypted = data["Encrypt"]
            if signature(self.token, data["TimeStamp"], data["Nonce"], encrypted) != data["MsgSignature"]:
                raise ValueError("reply has a bad MsgSignature")
            data = xmltodict.parse(to_text(PrpCrypto(self._key).decrypt(encrypted, self.app_id)))["xml"]
        return data
