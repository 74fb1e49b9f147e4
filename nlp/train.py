"""Rebuild the models from the labeled set: ``crmbot nlp train``.

Reproducible: the same data gives the same weights (sorted features, fixed folds, a
deterministic solver). For each task and language, the regularization strength is chosen by
5-fold cross-validation on the train split; the test split is only used for the recorded figures.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from nlp import tokenize as tok
from nlp.analysis import clean_input, featurize
from nlp.evaluate import DATA, evaluate, load_labeled
from nlp.model import MODELS, TASKS, LinearModel, load_scorer, model_path

C_GRID = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


def _features(row: dict) -> dict[str, float]:
    return featurize(clean_input(row["text"]), row["lang"])[1]


def fit(rows: list[dict], task: str) -> tuple[LinearModel, float]:
    """A softmax model for ``task`` over ``rows``; returns it and the C chosen by cross-validation."""
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    X_dicts = [_features(row) for row in rows]
    y = [row[task] for row in rows]
    vectorizer = DictVectorizer(sort=True)
    X = vectorizer.fit_transform(X_dicts)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)

    def model(c: float) -> LogisticRegression:
        return LogisticRegression(C=c, max_iter=5000, class_weight="balanced", solver="lbfgs")

    best_c = max(C_GRID, key=lambda c: (cross_val_score(model(c), X, y, cv=folds, scoring="f1_macro").mean(), -c))
    fitted = model(best_c).fit(X, y)
    names = vectorizer.get_feature_names_out()
    coef = fitted.coef_
    if len(fitted.classes_) == 2:  # scikit-learn keeps one row for two classes
        coef = [[-w for w in coef[0]], list(coef[0])]
        intercept = [-fitted.intercept_[0], fitted.intercept_[0]]
    else:
        intercept = list(fitted.intercept_)
    weights = {name: tuple(float(coef[k][j]) for k in range(len(fitted.classes_))) for j, name in enumerate(names)}
    return LinearModel(tuple(fitted.classes_), tuple(float(v) for v in intercept), weights), best_c


def train(data: Path = DATA, brand_words: Sequence[str] = (),
          intent_rules: Sequence[tuple[str, Sequence[str]]] | None = None) -> dict:
    """Train all four models, write them and ``metrics.json`` (the test-split figures CI checks)."""
    tok.load(brand_words)
    rows = load_labeled(data, split="train")
    MODELS.mkdir(parents=True, exist_ok=True)
    chosen = {}
    for lang in ("zh", "en"):
        group = [row for row in rows if row["lang"] == lang]
        for task in TASKS:
            model, c = fit(group, task)
            model_path(task, lang).write_text(json.dumps(model.to_json(), ensure_ascii=False, sort_keys=True),
                                              encoding="utf-8")
            chosen[f"{lang}_{task}"] = {"C": c, "train_rows": len(group), "features": len(model.weights)}
    load_scorer.cache_clear()
    report = evaluate(load_labeled(data, split="test"), intent_rules)
    metrics = {"models": chosen, "test": report}
    (MODELS / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=1, sort_keys=True),
                                      encoding="utf-8")
    return metrics
