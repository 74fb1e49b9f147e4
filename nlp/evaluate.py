"""Labeled data, metrics, and the side-by-side evaluation of our models against baselines."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Sequence

from nlp.analysis import NO_INTENT, analyze, clean_input, vader_analyzer
from nlp.intent import INTENTS, rule_intent

DATA = Path(__file__).with_name("data") / "labeled.jsonl"
SENTIMENTS = ("pos", "neu", "neg")


class DataError(ValueError):
    """A labeled file line that cannot be used; the message names the file and line."""


def load_labeled(path: Path = DATA, split: str | None = None) -> list[dict]:
    """Rows of a JSON-lines file with ``text``, ``lang`` (zh/en), ``sentiment`` and ``intent``."""
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: not JSON ({exc.msg})") from None
        problems = [name for name, allowed in (("lang", ("zh", "en")), ("sentiment", SENTIMENTS),
                                                ("intent", INTENTS)) if row.get(name) not in allowed]
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or problems:
            raise DataError(f"{path}:{number}: needs text, lang (zh|en), sentiment (pos|neu|neg) and intent "
                            f"({'|'.join(INTENTS)}); bad: {', '.join(problems) or 'text'}")
        if split is None or row.get("split", "test") == split:
            rows.append(row)
    if not rows:
        raise DataError(f"{path}: no labeled rows" + (f" in split {split!r}" if split else ""))
    return rows


def scores(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1 over the labels present in gold or predictions, and a confusion matrix."""
    pairs = Counter(zip(gold, predicted))
    present = [label for label in labels if label in set(gold) | set(predicted)]
    f1s = []
    for label in present:
        tp = pairs[(label, label)]
        fp = sum(n for (g, p), n in pairs.items() if p == label and g != label)
        fn = sum(n for (g, p), n in pairs.items() if g == label and p != label)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return {"n": len(gold), "accuracy": round(sum(pairs[(label, label)] for label in labels) / max(len(gold), 1), 4),
            "macro_f1": round(sum(f1s) / max(len(f1s), 1), 4), "labels": present,
            "confusion": [[pairs[(g, p)] for p in present] for g in present]}


def snownlp_sentiment(text: str) -> str:
    from snownlp import SnowNLP

    clean = clean_input(text)
    if not clean:
        return "neu"
    value = SnowNLP(clean).sentiments
    return "pos" if value > 0.6 else "neg" if value < 0.4 else "neu"


def vader_sentiment(text: str) -> str:
    compound = vader_analyzer().polarity_scores(clean_input(text))["compound"]
    return "pos" if compound >= 0.05 else "neg" if compound <= -0.05 else "neu"


def evaluate(rows: Iterable[dict], intent_rules: Sequence[tuple[str, Sequence[str]]] | None = None) -> dict:
    """Our sentiment and intent per language, next to the baselines: snownlp (Chinese sentiment),
    VADER alone (English sentiment) and the keyword rules alone (intent)."""
    by_lang: dict[str, list[dict]] = {}
    for row in rows:
        by_lang.setdefault(row["lang"], []).append(row)
    report: dict = {}
    for lang, group in sorted(by_lang.items()):
        results = [analyze(row["text"], lang, k=0) for row in group]
        gold_s, gold_i = [r["sentiment"] for r in group], [r["intent"] for r in group]
        baseline: Callable[[str], str] = snownlp_sentiment if lang == "zh" else vader_sentiment
        baseline_name = "snownlp" if lang == "zh" else "vader"
        report[lang] = {
            "sentiment": {"crmbot": scores(gold_s, [a.sentiment.label for a in results], SENTIMENTS),
                          baseline_name: scores(gold_s, [baseline(r["text"]) for r in group], SENTIMENTS)},
            "intent": {"crmbot": scores(gold_i, [a.intent.name for a in results], INTENTS),
                       "keyword rules": scores(gold_i, [(rule_intent(r["text"], intent_rules or ()) or
                                                        NO_INTENT).name for r in group], INTENTS)},
        }
    return report


def format_report(report: dict) -> str:
    """The evaluation as text: a line per model, then the confusion matrix of ours."""
    out = []
    for lang, tasks in report.items():
        for task, models in tasks.items():
            out.append(f"== {task} ({lang}, {next(iter(models.values()))['n']} texts)")
            for name, s in models.items():
                out.append(f"  {name:14} accuracy {s['accuracy']:.3f}   macro-F1 {s['macro_f1']:.3f}")
            ours = models["crmbot"]
            width = max(len(label) for label in ours["labels"]) + 1
            out.append("  confusion (rows: gold, columns: crmbot)")
            out.append("  " + " " * width + " ".join(f"{label[:6]:>6}" for label in ours["labels"]))
            for label, row in zip(ours["labels"], ours["confusion"]):
                out.append(f"  {label:<{width}}" + " ".join(f"{n:>6}" for n in row))
    return "\n".join(out)
