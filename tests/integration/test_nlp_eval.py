"""The models against the recorded figures (CI fails if they drop), and the `crmbot nlp` commands."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.content import load_content
from nlp import analysis
from nlp.evaluate import evaluate, load_labeled
from nlp.model import MODELS

RECORDED = json.loads((MODELS / "metrics.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def report() -> dict:
    rules = load_content().rules
    analysis.load(rules.brand_words)
    return evaluate(load_labeled(split="test"), rules.intents)


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("task", ["sentiment", "intent"])
def test_figures_do_not_drop_below_the_recorded_ones(report, lang, task) -> None:
    now, then = report[lang][task]["crmbot"], RECORDED["test"][lang][task]["crmbot"]
    assert now["accuracy"] >= then["accuracy"] - 0.005, (now["accuracy"], then["accuracy"])
    assert now["macro_f1"] >= then["macro_f1"] - 0.005, (now["macro_f1"], then["macro_f1"])


def test_chinese_sentiment_beats_snownlp_by_ten_points(report) -> None:
    ours, snow = report["zh"]["sentiment"]["crmbot"], report["zh"]["sentiment"]["snownlp"]
    assert ours["macro_f1"] >= snow["macro_f1"] + 0.10, (ours["macro_f1"], snow["macro_f1"])


def crmbot(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "web.cli", "nlp", *args], input=stdin, capture_output=True,
                          timeout=300, env={k: v for k, v in os.environ.items() if not k.startswith("CRMBOT_")})


def test_predict_reads_lines_and_json_lines_and_survives_bad_bytes() -> None:
    done = crmbot("predict", stdin="等了四十分钟还没出餐，太差了\n".encode()
                  + b'{"text": "Terrible service, cold coffee and a rude barista. Never again.", "lang": "en"}\n'
                  + b"\xff\xfe broken\n\n")
    assert done.returncode == 0, done.stderr.decode()
    out = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [o["lang"] for o in out[:2]] == ["zh", "en"] and len(out) == 4
    # The text comes back as given (not lower-cased), so scores can be joined to their input.
    assert out[1]["text"].startswith("Terrible service") and out[2]["text"] == "\ufffd\ufffd broken"
    assert out[0]["sentiment"] == "neg" and out[1]["sentiment"] == "neg" and out[0]["intent"] == "complaint"
    assert {"sentiment_score", "intent", "intent_confidence", "keywords"} <= set(out[0])


def test_eval_on_a_brands_own_file(tmp_path: Path) -> None:
    data = tmp_path / "brand.jsonl"
    data.write_text("\n".join(json.dumps(row, ensure_ascii=False) for row in [
        {"text": "积分怎么查", "lang": "zh", "sentiment": "neu", "intent": "points_balance"},
        {"text": "太慢了，差评", "lang": "zh", "sentiment": "neg", "intent": "complaint"},
        {"text": "love it", "lang": "en", "sentiment": "pos", "intent": "praise"}]), encoding="utf-8")
    done = crmbot("eval", "--data", str(data), "--json")
    assert done.returncode == 0, done.stderr.decode()
    figures = json.loads(done.stdout)
    assert figures["zh"]["sentiment"]["crmbot"]["n"] == 2 and "snownlp" in figures["zh"]["sentiment"]
    text = crmbot("eval", "--data", str(data))
    assert b"macro-F1" in text.stdout and b"confusion" in text.stdout


@pytest.mark.parametrize("content, message", [
    ('{"text": "x", "lang": "fr", "sentiment": "neu", "intent": "faq"}', b"brand.jsonl:1"),
    ("not json", b"not JSON"),
    ("", b"no labeled rows"),
])
def test_eval_refuses_bad_files_clearly(tmp_path: Path, content: str, message: bytes) -> None:
    data = tmp_path / "brand.jsonl"
    data.write_text(content, encoding="utf-8")
    done = crmbot("eval", "--data", str(data))
    assert done.returncode != 0 and message in done.stderr and b"Traceback" not in done.stderr
