"""NLP throughput on one core: tokenize, keywords, sentiment, intent, and the whole analysis,
next to snownlp's sentiment measured in the same run.

    python -m bench.nlp [--seconds S] [--rounds N]

Texts are the labeled set's Chinese and English lines (the real length mix of the channels).
Each figure is texts per second over at least ``--seconds`` of work, the median of ``--rounds``
rounds that alternate with the baseline.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

from config.content import load_content
from nlp import analysis
from nlp import tokenize as tok
from nlp.evaluate import load_labeled
from nlp.keywords import keywords
from nlp.text import normalize


def rate(work: Callable[[str], object], texts: list[str], seconds: float) -> float:
    """Texts per second over at least ``seconds`` of work, cycling through ``texts``."""
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for text in texts:
            # A stream of new texts: nothing cached from the previous pass is free.
            normalize.cache_clear()
            tok._cached_cut.cache_clear()
            work(text)
        done += len(texts)
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per stage and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rules = load_content().rules
    analysis.load(rules.brand_words)
    rows = load_labeled()
    zh = [r["text"] for r in rows if r["lang"] == "zh"]
    mixed = [r["text"] for r in rows]
    from snownlp import SnowNLP

    # Each stage on its own, as a caller would use it; the baseline runs on the same texts.
    stages: dict[str, Callable[[str], object]] = {
        "snownlp sentiment (zh, baseline)": lambda t: SnowNLP(t).sentiments,
        "tokenize (zh)": lambda t: tok.tokenize(t, "zh"),
        "keywords (zh)": keywords,
        "sentiment (zh)": lambda t: analysis.sentiment(t, "zh"),
        "intent (zh)": lambda t: analysis.intent(t, "zh"),
        "full analysis (zh)": lambda t: analysis.analyze(t, "zh"),
        "full analysis (zh + en)": lambda t: analysis.analyze(t),
    }
    # Rounds alternate every stage with the baseline, so a slow spell of this shared machine
    # hits both; each figure is a median over rounds, each ratio taken within its own round.
    runs: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(args.rounds):
        for name, work in stages.items():
            runs[name].append(rate(work, mixed if "zh + en" in name else zh, args.seconds))
    baseline = runs["snownlp sentiment (zh, baseline)"]
    print(f"{'what':34} {'texts/s':>9} {'x snownlp':>10}   per round")
    for name, figures in runs.items():
        ratios = [value / base for value, base in zip(figures, baseline)]
        print(f"{name:34} {statistics.median(figures):>9.0f} {statistics.median(ratios):>10.1f}   "
              + ", ".join(f"{r:.1f}" for r in ratios))
    ratio = statistics.median(value / base for value, base in zip(runs["full analysis (zh)"], baseline))
    print(f"goal: full analysis >= 10x snownlp sentiment (median of {args.rounds} rounds): {ratio:.1f}x "
          f"{'PASS' if ratio >= 10 else 'FAIL'}")


if __name__ == "__main__":
    main()
