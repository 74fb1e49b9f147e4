"""The router's decisions without a store: ``crmbot bot route`` and ``crmbot bot test``.

A text is routed as the first message of a new conversation, through the same ``understand``
and ``Router.decide`` that the webhook runs; nothing is written anywhere.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable

from bot.handlers import default_actions
from bot.router import Router
from bot.understanding import understand
from channels import base
from channels.base import InboundMessage
from config.content import BotContent
from nlp.evaluate import SENTIMENTS, scores
from nlp.intent import INTENTS


def router_for(content: BotContent) -> Router:
    """A router that decides but cannot send codes (routing never reaches a handler)."""
    return Router(default_actions(), content, None, state_ttl=0)


def route(text: str, router: Router) -> dict:
    """What the router makes of ``text`` in a new conversation: ``text``, ``lang``, ``intent``,
    ``confidence``, ``sentiment``, ``sentiment_score`` and ``action``."""
    msg = InboundMessage("wechat", "route", "route", "route", base.TEXT, datetime.now(timezone.utc), text)
    u = understand(msg, router.content)
    return {"text": text, "lang": u.lang, "intent": u.intent, "confidence": round(u.confidence, 3),
            "sentiment": u.sentiment.label, "sentiment_score": u.sentiment.score,
            "action": router.decide(msg.kind, u, {}, False)}


def score_routes(rows: Iterable[dict], router: Router) -> dict:
    """The router's intents and sentiments scored against labeled ``rows`` (``text``,
    ``intent``, ``sentiment``): macro-F1, per-intent recall, confusions, and the recall of
    complaints (a missed complaint is the costliest mistake). The action counts show what the
    bot would do."""
    rows = list(rows)
    routed = [route(row["text"], router) for row in rows]
    intent = scores([r["intent"] for r in rows], [r["intent"] for r in routed], INTENTS)
    sentiment = scores([r["sentiment"] for r in rows], [r["sentiment"] for r in routed], SENTIMENTS)
    confusion = dict(zip(intent["labels"], intent["confusion"]))
    recall = {label: round(row[i] / sum(row), 4) if sum(row) else None
              for i, (label, row) in enumerate(confusion.items())}
    actions: dict[str, int] = {}
    for r in routed:
        actions[r["action"]] = actions.get(r["action"], 0) + 1
    mistakes = [{"text": row["text"], "gold": row["intent"], "routed": r["intent"], "action": r["action"]}
                for row, r in zip(rows, routed) if row["intent"] != r["intent"]]
    return {"n": len(rows), "intent": intent, "sentiment": sentiment, "intent_recall": recall,
            "complaint_recall": recall.get("complaint"), "actions": dict(sorted(actions.items())),
            "mistakes": mistakes}


def format_test(report: dict) -> str:
    """The report as text: the three headline figures, recalls, the confusion matrix."""
    out = [f"{report['n']} labeled texts",
           f"  intent macro-F1     {report['intent']['macro_f1']:.3f}   (accuracy {report['intent']['accuracy']:.3f})",
           f"  complaint recall    {report['complaint_recall'] if report['complaint_recall'] is not None else '-'}",
           f"  sentiment macro-F1  {report['sentiment']['macro_f1']:.3f}",
           "  recall per intent:  " + ", ".join(f"{k} {v:.2f}" for k, v in report["intent_recall"].items()
                                                if v is not None),
           "  actions:            " + ", ".join(f"{k} {v}" for k, v in report["actions"].items()),
           "  confusion (rows: gold, columns: routed)"]
    labels = report["intent"]["labels"]
    width = max(len(label) for label in labels) + 1
    out.append("  " + " " * width + " ".join(f"{label[:6]:>6}" for label in labels))
    for label, row in zip(labels, report["intent"]["confusion"]):
        out.append(f"  {label:<{width}}" + " ".join(f"{n:>6}" for n in row))
    return "\n".join(out)
