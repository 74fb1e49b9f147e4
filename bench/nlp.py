"""NLP throughput on one core: tokenize, keywords, sentiment, intent, and the whole analysis,
next to snownlp's sentiment measured in the same run.

    python -m bench.nlp [--seconds S]

Texts are the labeled set's Chinese and English lines (the real length mix of the channels).
Each figure is texts per second over at least ``--seconds`` of work, best of two passes.
"""
from __future__ import annotations

import argparse
import time
from typing import Callable

from config.content import load_content
from nlp import analysis
from nlp import tokenize as tok
from nlp.evaluate import load_labeled
from nlp.keywords import keywords


def rate(work: Callable[[str], object], texts: list[str], seconds: float) -> float:
    best = 0.0
    for _ in range(2):
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            for text in texts:
                work(text)
            done += len(texts)
        best = max(best, done / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    rules = load_content().rules
    analysis.load(rules.brand_words)
    rows = load_labeled()
    zh = [r["text"] for r in rows if r["lang"] == "zh"]
    mixed = [r["text"] for r in rows]
    from snownlp import SnowNLP

    snownlp = rate(lambda t: SnowNLP(t).sentiments, zh[:200], args.seconds)
    # Each stage on its own, as a caller would use it (tokenize caches repeated texts: cleared).
    figures = {
        "snownlp sentiment (zh, baseline)": snownlp,
        "tokenize (zh)": rate(lambda t: (tok._cached_cut.cache_clear(), tok.tokenize(t, "zh")), zh, args.seconds),
        "keywords (zh)": rate(lambda t: (tok._cached_cut.cache_clear(), keywords(t)), zh, args.seconds),
        "sentiment (zh)": rate(lambda t: (tok._cached_cut.cache_clear(), analysis.sentiment(t, "zh")), zh,
                               args.seconds),
        "intent (zh)": rate(lambda t: (tok._cached_cut.cache_clear(),
                                       analysis.intent(t, "zh", rules.intents)), zh, args.seconds),
        "full analysis (zh)": rate(lambda t: (tok._cached_cut.cache_clear(),
                                              analysis.analyze(t, "zh", intent_rules=rules.intents)), zh,
                                   args.seconds),
        "full analysis (zh + en)": rate(lambda t: (tok._cached_cut.cache_clear(),
                                                   analysis.analyze(t, intent_rules=rules.intents)), mixed,
                                        args.seconds),
    }
    print(f"{'what':34} {'texts/s':>9} {'x snownlp':>10}")
    for name, value in figures.items():
        print(f"{name:34} {value:>9.0f} {value / snownlp:>10.1f}")
    ratio = figures["full analysis (zh)"] / snownlp
    print(f"goal: full analysis >= 10x snownlp sentiment: {ratio:.1f}x {'PASS' if ratio >= 10 else 'FAIL'}")


if __name__ == "__main__":
    main()
