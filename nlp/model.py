"""Features and a small linear (softmax) model whose inference is plain Python.

Training uses scikit-learn (``nlp.train``); the weights are exported to JSON under
``nlp/models/`` and scored here with dictionary lookups, which is many times faster per text than
calling scikit-learn, and needs no scikit-learn at run time.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping


MODELS = Path(__file__).with_name("models")
NEGATIONS_ZH = ("不", "没", "别", "无", "未", "非", "毫无", "并不", "一点也不")
NEGATIONS_EN = frozenset({"not", "no", "never", "dont", "don't", "didn't", "didnt", "isn't", "isnt", "wasn't",
                          "can't", "cant", "won't", "nothing", "nobody"})
# Markers of sarcasm and complaint-by-politeness that flip an apparently kind sentence.
SARCASM = ("呵呵", "服了", "谢谢你们全家", "真是太好了", "好棒棒", "真行", "可真", "🙄", "🙃", "thanks for nothing",
           "yeah right", "just great", "great, another", "love waiting", "oh great", "sure, ", "[doge]", "[微笑]")
_QUESTION_END = re.compile(r"(吗|呢|么|\?|？)\W*$")


def features(text: str, lang: str, tokens: list[str], vader: float | None = None) -> dict[str, float]:
    """Sparse features of one normalized text (``nlp.text.normalize``): characters and their
    bigrams and trigrams (Chinese), words and word bigrams, letter trigrams (English), negation
    scope, sarcasm and question marks; for English also VADER's compound score (``vader``)."""
    clean = text
    f: dict[str, float] = {}
    if vader is not None:
        # Scaled up: one dense, well-calibrated signal among thousands of sparse word features.
        f["vader+" if vader >= 0 else "vader-"] = 4 * abs(vader)
    if lang == "zh":
        chars = [ch for ch in clean if not ch.isspace()]
        for i, ch in enumerate(chars):
            f["c:" + ch] = 1.0
            if i:
                f["b:" + chars[i - 1] + ch] = 1.0
            if i > 1:  # three characters: 拉肚子, 没到账, 翻白眼, whatever jieba makes of them
                f["t:" + chars[i - 2] + chars[i - 1] + ch] = 1.0
        for i, token in enumerate(tokens):
            f["w:" + token] = 1.0
            if token in NEGATIONS_ZH and i + 1 < len(tokens):
                f["n:" + tokens[i + 1]] = 1.0
    else:
        negated = 0
        for i, token in enumerate(tokens):
            f[("not:" if negated else "w:") + token] = 1.0
            if i:
                f["b:" + tokens[i - 1] + " " + token] = 1.0
            negated = 3 if token in NEGATIONS_EN else max(negated - 1, 0)
            # Letter trigrams of each word, at half weight: "refunded", "refnd" and "refund" share most.
            padded = f"<{token}>"
            for j in range(len(padded) - 2):
                f["g:" + padded[j:j + 3]] = 0.5
    for marker in SARCASM:
        if marker in clean:
            f["sarcasm"] = 1.0
            f["s:" + marker] = 1.0
    if _QUESTION_END.search(clean):
        f["question"] = 1.0
    bangs = clean.count("!") + clean.count("！")
    if bangs:
        f["bang"] = min(bangs, 3) / 3
    return f


@dataclass(frozen=True)
class LinearModel:
    """One trained softmax model as stored in ``nlp/models/``: classes, intercepts, and a row of
    per-class weights for each feature. Scored through ``Scorer``."""

    classes: tuple[str, ...]
    intercept: tuple[float, ...]
    weights: Mapping[str, tuple[float, ...]]

    def to_json(self) -> dict:
        return {"classes": list(self.classes), "intercept": [round(v, 6) for v in self.intercept],
                "weights": {k: [round(w, 5) for w in row] for k, row in sorted(self.weights.items())}}

    @classmethod
    def from_json(cls, data: Mapping) -> LinearModel:
        return cls(tuple(data["classes"]), tuple(data["intercept"]),
                   {k: tuple(v) for k, v in data["weights"].items()})


@dataclass(frozen=True)
class Scorer:
    """The models of one language scored in one pass: a feature's weights for every task sit in
    one row, so a feature costs one dictionary lookup however many tasks there are."""

    tasks: Mapping[str, tuple[tuple[str, ...], slice]]  # task -> its classes and their columns
    intercept: tuple[float, ...]
    weights: Mapping[str, tuple[float, ...]]

    @classmethod
    def join(cls, models: Mapping[str, LinearModel]) -> Scorer:
        tasks, intercept, at = {}, [], 0
        for task, model in models.items():
            tasks[task] = (model.classes, slice(at, at + len(model.classes)))
            intercept.extend(model.intercept)
            at += len(model.classes)
        weights = {}
        for name in set().union(*(model.weights for model in models.values())):
            weights[name] = tuple(w for model in models.values()
                                  for w in model.weights.get(name, (0.0,) * len(model.classes)))
        return cls(tasks, tuple(intercept), weights)

    def probabilities(self, feats: Mapping[str, float]) -> dict[str, dict[str, float]]:
        """Class probabilities per task (softmax of intercept + sum of feature value x weight)."""
        weights = self.weights
        rows = [row if value == 1.0 else tuple(w * value for w in row)
                for name, value in feats.items() if (row := weights.get(name)) is not None]
        # Column sums through zip/sum run in C: the per-text cost is a dict lookup per feature.
        scores = [b + total for b, total in zip(self.intercept, map(sum, zip(*rows)))] if rows \
            else list(self.intercept)
        return {task: _softmax(classes, scores[columns]) for task, (classes, columns) in self.tasks.items()}


def _softmax(classes: tuple[str, ...], scores: list[float]) -> dict[str, float]:
    top = max(scores)
    exps = [math.exp(v - top) for v in scores]
    total = sum(exps)
    return {c: e / total for c, e in zip(classes, exps)}


TASKS = ("sentiment", "intent")
# Each task has a logistic regression and a naive Bayes model (``{lang}_{task}_nb.json``); their
# probabilities are mixed, this share to naive Bayes (see nlp.train.NB_ALPHA for how it was chosen).
BAYES, BAYES_SHARE = "_nb", 0.3


def model_path(task: str, lang: str) -> Path:
    return MODELS / f"{lang}_{task}.json"


@lru_cache(maxsize=None)
def load_scorer(lang: str) -> Scorer:
    """The trained models of ``lang`` ('zh' | 'en'); a model not trained is left out."""
    models = {}
    for task in TASKS:
        for name in (task, task + BAYES):
            path = model_path(name, lang)
            if path.exists():
                models[name] = LinearModel.from_json(json.loads(path.read_text(encoding="utf-8")))
    return Scorer.join(models)


def mixed(p: Mapping[str, Mapping[str, float]], task: str) -> dict[str, float] | None:
    """The task's class probabilities: the regression's, mixed with naive Bayes' when there is one."""
    regression, bayes = p.get(task), p.get(task + BAYES)
    if regression is None or bayes is None:
        return dict(regression) if regression is not None else None
    return {c: (1 - BAYES_SHARE) * regression[c] + BAYES_SHARE * bayes.get(c, 0.0) for c in regression}
