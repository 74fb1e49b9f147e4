"""FAQ retrieval: BM25 over jieba words and character bigrams, ranked with a confidence.

Each question variant of an entry is a document; an entry scores as its best variant. Words
carry the meaning ("营业时间"), character bigrams carry what jieba cuts differently or the
customer mistypes ("几点开门" / "几点开们"). rank-bm25 does the ranking; what is ours is the
tokens and the confidence.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from nlp import tokenize as tok
from nlp.keywords import stopwords
from nlp.text import normalize

_CJK = re.compile(r"[\u3400-\u9fff]")


@dataclass(frozen=True)
class FaqHit:
    """One entry as ranked for a query; ``confidence`` is 0..1 (see ``FaqIndex.rank``)."""

    entry_id: str
    question: str  # the variant that matched best: what "您是不是想问" shows
    confidence: float


# Words that ask the same thing, counted as one term: "发货时间一般是多久" and "什么时候发货" ask
# when, "门店在哪" and "哪里有店" where, "拿铁多少钱" and "拿铁什么价" the price. Without this a
# question matches only the variants that happen to use its question word. "" drops a word.
_ASKS_ALIKE = {**dict.fromkeys(("多久", "多长时间", "多长", "时候", "什么时候", "啥时候", "何时", "几时", "几天", "多少天",
                                "时间", "几点", "多会儿"), "?when"),
               **dict.fromkeys(("哪里", "哪儿", "在哪", "哪", "什么地方", "啥地方", "哪家", "哪些地方"), "?where"),
               **dict.fromkeys(("多少钱", "价格", "价钱", "价", "什么价", "售价", "几块", "几块钱"), "?price"),
               **dict.fromkeys(("咋", "咋样", "如何", "怎样"), "")}


def terms(text: str, lang: str) -> list[str]:
    """What BM25 counts: content words (no stopwords, no punctuation; question words of one
    meaning as one term) and, for Chinese, the bigrams of consecutive Chinese characters inside
    each clause."""
    clean = normalize(text)
    stop = stopwords()
    words = [_ASKS_ALIKE.get(w, w) for w in tok.tokenize_normalized(clean, lang)
             if w not in stop and any(c.isalnum() for c in w)]
    words = [w for w in words if w]
    if lang == "en":
        return words
    bigrams = []
    for run in re.findall(r"[\u3400-\u9fff]+", clean):
        bigrams.extend("~" + run[i:i + 2] for i in range(len(run) - 1)
                       if not (run[i] in _FUNCTION_CHARS and run[i + 1] in _FUNCTION_CHARS))
    return words + bigrams


# Characters of the question's frame, not its subject: a bigram of two of these ("在哪", "里看",
# "怎么") would match every "…在哪里看" question to every other.
_FUNCTION_CHARS = frozenset("的了吗呢吧啊呀在哪里怎么么什几是有没能可以请问你我们他她它这那个一下看要想会还都就多少")


class FaqIndex:
    """The knowledge base of one language, indexed once (at start-up) for ranking."""

    def __init__(self, questions: Mapping[str, Sequence[str]], lang: str) -> None:
        """``questions``: entry id -> its question variants in ``lang``."""
        from rank_bm25 import BM25Okapi  # imported here: numpy is not needed until an index is built

        self.lang = lang
        self._docs: list[tuple[str, str]] = [(entry_id, q) for entry_id, variants in questions.items()
                                             for q in variants if q.strip()]
        corpus = [terms(q, lang) or ["\x00"] for _, q in self._docs]
        self._bm25 = BM25Okapi(corpus) if corpus else None
        self._corpus = [set(doc) for doc in corpus]
        # Which variants hold each term: a query is scored against those alone, since BM25 gives
        # every other variant 0 (rank-bm25 scores all of them, a Python loop per term).
        self._holding: dict[str, list[int]] = {}
        for i, doc in enumerate(self._corpus):
            for term in doc:
                self._holding.setdefault(term, []).append(i)
        # A variant's score against itself: the most any query can earn from that document.
        self._self_scores = [float(self._bm25.get_batch_scores(doc, [i])[0]) if self._bm25 else 0.0
                             for i, doc in enumerate(corpus)]

    def rank(self, text: str, k: int = 3) -> list[FaqHit]:
        """The ``k`` best entries for ``text``, best first.

        confidence = sqrt(covered x earned): ``covered`` is the share of the query's terms (by
        IDF weight) found in the matched variant, ``earned`` the share of that variant's own
        BM25 score that the query reaches. A query with many unrelated words, or one that
        shares a single common word with a long question, stays low on one of the two."""
        if self._bm25 is None:
            return []
        query = terms(text, self.lang)
        if not query:
            return []
        candidates = sorted({i for term in query for i in self._holding.get(term, ())})
        if not candidates:
            return []
        scores = dict(zip(candidates, self._bm25.get_batch_scores(query, candidates)))
        idf = self._bm25.idf
        total = sum(max(idf.get(t, 0.0), 0.0) for t in query) or 1.0
        best: dict[str, FaqHit] = {}
        for i in sorted(candidates, key=lambda j: -scores[j]):
            # Confidence can reorder the top few, so look a little past k by score.
            if scores[i] <= 0 or len(best) >= 2 * k:
                break
            entry_id, question = self._docs[i]
            if entry_id in best:
                continue
            doc = self._corpus[i]
            covered = sum(max(idf.get(t, 0.0), 0.0) for t in query if t in doc) / total
            earned = min(1.0, float(scores[i]) / self._self_scores[i]) if self._self_scores[i] > 0 else 0.0
            best[entry_id] = FaqHit(entry_id, question, round((covered * earned) ** 0.5, 3))
        return sorted(best.values(), key=lambda h: -h.confidence)[:k]
