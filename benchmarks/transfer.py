"""Transfer: the shipped heads on ANOTHER source of the same family, and on ordinary posts of other topics,
with the share of posts each head flags as out of its domain (``in_domain: false``).

    nice -n 10 python benchmarks/transfer.py              # the shipped some-mini; writes results/transfer.{json,md}

For each case the source's labels are mapped onto the head's (``gold``), or the head's onto a coarser
shared space (``pred``); a case whose labels cannot be mapped reports only the share flagged and the
distribution of the labels the head gave. Metrics: macro-F1 over the mapped labels, F1 of the positive
label and AUROC for binary cases, on all posts and on the posts the head calls in domain. A domain
matrix adds every head's flagged share on its own test split and on four fixed off-topic sets.
Thresholds come from benchmarks/fit_trust.py (validation only); nothing here is tuned.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _trust_data import DATA, EmbeddingStore, load_head_items, sample

RESULTS = Path(__file__).resolve().parent / "results"

def _topic_bound() -> tuple[str, ...]:
    from somelvlm.taxonomy.registry import all_tasks

    return tuple(t.name for t in all_tasks() if t.topic_bound and t.kind != "generation")


TOPIC_BOUND = _topic_bound()
"""Heads trained on one topic (their task YAML names ``domain.topic``: COVID, 17 news events, US
political claims, five stance targets, the LGBTQ+ community): the applicability target (>= 80% of
ordinary off-topic posts flagged) applies to them."""

SENT5 = {"very_negative": "negative", "negative": "negative", "neutral": "neutral", "positive": "positive",
         "very_positive": "positive"}


@dataclass(frozen=True)
class Case:
    """One head scored on one source's posts."""

    family: str
    head: str
    source: str
    task: str
    """The task name the source's adapter yields."""
    split: str = "test"
    subset: str | None = None
    """Keep only examples whose ``meta["subset"]`` (or ``meta["file"]``) contains this."""
    gold: dict[str, str | None] | None = None
    """Source label -> head label (labels it does not name are dropped); absent: the labels are the head's."""
    pred: dict[str, str] | None = None
    """Head label -> the shared label space, when the head's labels are finer than the source's."""
    positive: str | None = None
    """For binary cases: the label whose F1 and AUROC are reported."""
    labelled: bool = True
    """False: no shared label space; report the share flagged and the predicted label distribution."""
    note: str = ""


ORDINARY = ("tweeteval", "emotion")  # ordinary tweets of no fixed topic (anger, joy, optimism, sadness)

CASES = [
    # sarcasm / irony
    Case("sarcasm/irony", "irony", "isarcasmeval", "sarcasm",
         gold={"sarcastic": "irony", "not_sarcastic": "non_irony"}, positive="irony"),
    Case("sarcasm/irony", "sarcasm", "tweeteval", "irony",
         gold={"irony": "sarcastic", "non_irony": "not_sarcastic"}, positive="sarcastic"),
    Case("sarcasm/irony", "sarcasm", "cm_memes", "meme_sarcasm", positive="sarcastic",
         note="Hindi-English meme text"),
    Case("sarcasm/irony", "meme_sarcasm", "isarcasmeval", "sarcasm", positive="sarcastic"),
    # hate and offence
    Case("hate/offence", "hate", "davidson", "hate_offensive",
         gold={"hate": "hate", "offensive": "not_hate", "neither": "not_hate"}, positive="hate"),
    Case("hate/offence", "offensive", "davidson", "hate_offensive",
         gold={"hate": "offensive", "offensive": "offensive", "neither": "not_offensive"}, positive="offensive"),
    Case("hate/offence", "hate_offensive", "tweeteval", "hate",
         pred={"hate": "hate", "offensive": "not_hate", "neither": "not_hate"}, positive="hate"),
    Case("hate/offence", "hate_offensive", "tweeteval", "offensive",
         pred={"hate": "offensive", "offensive": "offensive", "neither": "not_offensive"}, positive="offensive"),
    Case("hate/offence", "hate", "hmc", "hateful_meme", subset="FHM",
         gold={"hateful": "hate", "not_hateful": "not_hate"}, positive="hate", note="FHM meme text"),
    Case("hate/offence", "offensive", "harmeme", "harmful_meme", subset="Harm-C",
         gold={"not_harmful": "not_offensive", "somewhat_harmful": "offensive", "very_harmful": "offensive"},
         positive="offensive", note="harmful taken as offensive: related, not the same label"),
    # misinformation
    Case("misinformation", "fake_news", "liar", "claim_veracity",
         gold={"pants_fire": "fake", "false": "fake", "true": "real", "mostly_true": "real"}, positive="fake",
         note="pants-fire/false as fake, true/mostly-true as real; the middle levels dropped"),
    Case("misinformation", "fake_news", "mediaeval2016", "verify_post", positive="fake"),
    Case("misinformation", "fake_news", "somelvlm_testset", "fake_news", subset="FakeNewsNet", positive="fake",
         note="FakeNewsNet articles"),
    Case("misinformation", "verify_post", "constraint", "fake_news", positive="fake"),
    # harmful memes
    Case("harmful memes", "harmful_meme", "harmeme", "harmful_meme", split="val", subset="Harm-P",
         note="NOT a transfer: the shipped head was trained on Harm-C and Harm-P train; Harm-P val also fit the threshold"),
    Case("harmful memes", "harmful_meme", "hmc", "hateful_meme", subset="FHM",
         gold={"hateful": "harmful", "not_hateful": "not_harmful"},
         pred={"not_harmful": "not_harmful", "somewhat_harmful": "harmful", "very_harmful": "harmful"},
         positive="harmful", note="hateful taken as harmful"),
    # sentiment
    Case("sentiment", "sentiment", "memotion", "meme_sentiment", gold=SENT5, note="meme text, 5 levels folded to 3"),
    Case("sentiment", "sentiment", "somelvlm_testset", "sentiment", subset="MVSA", note="MVSA tweets (text only)"),
    Case("sentiment", "meme_sentiment", "tweeteval", "sentiment", pred=SENT5, note="head's 5 levels folded to 3"),
    # ordinary posts of other topics for the topic-bound heads
    *[Case("off-topic", h, *ORDINARY, labelled=False, note="ordinary tweets (TweetEval emotion)") for h in TOPIC_BOUND],
    Case("off-topic", "fake_news", "tweeteval", "sentiment", labelled=False, note="ordinary tweets (TweetEval sentiment)"),
    Case("off-topic", "party", "constraint", "fake_news", labelled=False, note="COVID posts"),
    Case("off-topic", "verify_post", "liar", "claim_veracity", labelled=False, note="US political statements"),
]

MATRIX_SETS = {
    "ordinary tweets": ("tweeteval", "emotion", None),
    "COVID posts": ("constraint", "fake_news", None),
    "political claims": ("liar", "party", None),
    "meme text": ("hmc", "hateful_meme", "FHM"),
}
"""Fixed off-topic sets (test splits) for the domain matrix: every head's flagged share on each."""


def source_examples(data: Path, source: str, task: str, split: str, subset: str | None) -> list:
    from somelvlm.data.report import DataReport
    from somelvlm.data.sources import load_source

    out = []
    for ex in load_source(source, data, DataReport()):
        if ex.task != task or ex.split != split or not (ex.text and ex.text.strip()):
            continue
        where = ex.meta.get("subset", "") + " " + ex.meta.get("file", "")
        if subset and subset not in where:
            continue
        out.append(ex)
    return out


def macro_f1(y: list[str], p: list[str], labels: list[str]) -> float:
    scores = []
    for lab in labels:
        tp = sum(a == lab and b == lab for a, b in zip(y, p))
        fp = sum(a != lab and b == lab for a, b in zip(y, p))
        fn = sum(a == lab and b != lab for a, b in zip(y, p))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return 100 * float(np.mean(scores))


def auroc(y: np.ndarray, s: np.ndarray) -> float | None:
    if y.min() == y.max():
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    for v in np.unique(s):  # average ranks of ties
        tie = s == v
        ranks[tie] = ranks[tie].mean()
    pos = y == 1
    return 100 * float((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum()))


def score_case(model, store, case: Case, examples: list, cap: int, seed: int) -> dict:
    """The case's row: n, share flagged, predicted label distribution and (when labelled) metrics."""
    spec = model.specs[case.head]
    if case.labelled and case.gold:  # labels the map does not name are dropped
        examples = [ex for ex in examples if case.gold.get(ex.target) is not None]
    examples = sample(examples, cap, seed)
    emb = store([ex.text for ex in examples])
    texts = [ex.text for ex in examples]
    model._last = (tuple(texts), emb)  # the cached embedding: predict_proba / domain_scores reuse it
    probs = model.predict_proba(texts, [case.head])[case.head]
    scores = model.domain_scores(texts, [case.head])[case.head]
    threshold = model.domain_threshold(case.head)
    inside = scores >= threshold if threshold is not None else np.ones(len(texts), bool)
    if spec.groups:  # stance: the most confident non-"none" target answer per post
        probs = probs.max(axis=1)
    head_labels = [spec.labels[k] for k in probs.argmax(axis=1)]
    row = {"n": len(examples), "flagged": round(100 * float(1 - inside.mean()), 1) if threshold is not None else None,
           "predicted": dict(Counter(head_labels).most_common()),
           "predicted_in_domain": dict(Counter(l for l, i in zip(head_labels, inside) if i).most_common()),
           "mean_confidence": round(100 * float(probs.max(axis=1).mean()), 1)}
    if not case.labelled:
        return row
    gold = [case.gold[ex.target] if case.gold else ex.target for ex in examples]
    pred = [(case.pred or {}).get(lab, lab) for lab in head_labels]
    labels = sorted(set(gold) | ({case.positive} if case.positive else set()))
    row["gold"] = dict(Counter(gold).most_common())
    row["macro_f1"] = round(macro_f1(gold, pred, labels), 1)
    keep = [i for i in range(len(gold)) if inside[i]]
    row["macro_f1_in_domain"] = round(macro_f1([gold[i] for i in keep], [pred[i] for i in keep], labels), 1) if keep else None
    if case.positive:
        row["f1_positive"] = round(macro_f1(gold, pred, [case.positive]), 1)
        pos_idx = [k for k, lab in enumerate(spec.labels) if (case.pred or {}).get(lab, lab) == case.positive]
        y = np.array([g == case.positive for g in gold], dtype=int)
        a = auroc(y, probs[:, pos_idx].sum(axis=1))
        row["auroc"] = None if a is None else round(a, 1)
    return row


def domain_matrix(model, store, items: dict, data: Path, cap: int, seed: int) -> dict:
    """``head -> {"own test": %, set: %}`` flagged shares (None where the head has no threshold)."""
    sets = {name: sample(source_examples(data, s, t, "test", sub), cap, seed) for name, (s, t, sub) in MATRIX_SETS.items()}
    emb = {name: store([ex.text for ex in exs]) for name, exs in sets.items()}
    out = {}
    for head in model.tasks:
        threshold = model.domain_threshold(head)
        if threshold is None or model.applicability is None:
            out[head] = None
            continue
        own = sample(items[head].get("test", []), cap, seed)
        row = {"own test": round(100 * float((model.applicability.scores(head, store([i.text for i in own])) < threshold).mean()), 1)
               if own else None}
        for name, e in emb.items():
            row[name] = round(100 * float((model.applicability.scores(head, e) < threshold).mean()), 1)
        out[head] = row
    return out


def markdown(results: list[dict], matrix: dict, name: str) -> tuple[str, str]:
    """(the full transfer report, the short applicability section for quality.md and the card)."""
    lines = [f"# Transfer and applicability ({name})", "",
             "Each head on another source of its family and on ordinary posts of other topics. `flagged` = share "
             "of the posts the head calls out of its domain (`in_domain: false`; thresholds from validation only, "
             "`benchmarks/fit_trust.py`). Metrics on all posts, and on the posts it keeps in domain. "
             "Reproduce: `python benchmarks/fit_trust.py && python benchmarks/transfer.py`.", "",
             "| family | head | on (source / task / split) | n | flagged % | macro-F1 | macro-F1 in domain | F1 pos | AUROC | head's labels (all posts) | note |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in results:
        c, m = r["case"], r["result"]
        where = f"{c['source']} / {c['task']}{' ' + c['subset'] if c['subset'] else ''} / {c['split']}"
        dist = ", ".join(f"{k} {100 * v / m['n']:.0f}%" for k, v in list(m["predicted"].items())[:3])
        fmt = lambda v: "-" if v is None else v
        lines.append(f"| {c['family']} | {c['head']} | {where} | {m['n']} | {fmt(m['flagged'])} | {fmt(m.get('macro_f1'))} | "
                     f"{fmt(m.get('macro_f1_in_domain'))} | {fmt(m.get('f1_positive'))} | {fmt(m.get('auroc'))} | {dist} | {c['note']} |")
    sets = list(MATRIX_SETS)
    mat = ["| head | own test | " + " | ".join(sets) + " |", "|---|---:|" + "---:|" * len(sets)]
    for head, row in matrix.items():
        if row is None:
            mat.append(f"| {head} | - |" + " - |" * len(sets))
            continue
        mark = " (topic-bound)" if head in TOPIC_BOUND else ""
        mat.append(f"| {head}{mark} | {row['own test']} | " + " | ".join(str(row[s]) for s in sets) + " |")
    bound = {h: matrix[h] for h in TOPIC_BOUND if matrix.get(h)}
    met = [h for h, r in bound.items() if r["ordinary tweets"] >= 80 and (r["own test"] or 0) <= 10]
    summary = (f"Topic-bound heads meeting the target (>= 80% of ordinary tweets flagged, <= 10% of own test posts "
               f"flagged): {len(met)} of {len(bound)} ({', '.join(met) or 'none'}).")
    own = {h: r["own test"] for h, r in matrix.items() if r and r["own test"] is not None}
    over = [f"{h} {v:.1f}%" for h, v in own.items() if v > 10]
    if own:
        summary += (f" Own test posts flagged over all {len(own)} heads: median {np.median(list(own.values())):.1f}%, "
                    f"max {max(own.values()):.1f}% ({max(own, key=own.get)}); over 10%: {', '.join(over) or 'none'}.")
    section = ("Share of posts (%) each head flags as out of its domain (`in_domain: false`): its own test split, "
               "and fixed sets of other domains (test splits: TweetEval emotion, Constraint COVID, LIAR, FHM meme "
               "text). Domain score: the probability of a per-head logistic regression on the encoder's embedding "
               "(`models/applicability.py`, `domain_heads`). What it separates follows the task's `domain` (its YAML): "
               "a topic-bound head, its own training posts against every other dataset's; any other head, the "
               "training posts of its genre (tweets, memes, code-mixed memes, jokes, political statements: its own "
               "and the other heads' of that genre) against other genres', so a tweet head keeps ordinary and COVID "
               "tweets in its domain by design. Threshold: the 5th percentile of the scores of the positive side's "
               "VALIDATION posts (the head's own, plus as many of each same-genre head's). "
               "The ordinary-tweets set is the emotion head's own test split. " + summary + " Full report: `benchmarks/results/transfer.md`.\n\n" + "\n".join(mat) + "\n")
    full = "\n".join(lines) + "\n\n## Domain matrix (flagged %)\n\n" + section
    return full, section


def main(argv: list[str] | None = None) -> None:
    from somelvlm.models.applicability import model_digest
    from somelvlm.models.compact import ASSETS, CompactModel

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from calibration import put_section

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ASSETS / "some-mini")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--cap", type=int, default=1000, help="posts per case (a fixed random subset)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-card", action="store_true")
    args = ap.parse_args(argv)

    model = CompactModel(args.model, threads=args.threads)
    if model.applicability is None:
        sys.exit(f"{args.model} has no applicability.safetensors: run benchmarks/fit_trust.py --model {args.model}")
    store = EmbeddingStore(model, model_digest(args.model))
    results = []
    joint = model.config.get("trained", {}).get("multi_source", {}).get("heads", {})
    for case in CASES:
        if case.task in joint.get(case.head, {}).get("sources", []):  # benchmarks/multisource_heads.py
            case = replace(case, note="; ".join(filter(None, [case.note, "NOT a transfer: the head also trains on this "
                                                              "source's train split (multisource_heads.py); test unseen"])))
        examples = source_examples(args.data, case.source, case.task, case.split, case.subset)
        if not examples:
            print(f"skip {case.head} on {case.source}/{case.task}: no examples", file=sys.stderr)
            continue
        results.append({"case": asdict(case), "result": score_case(model, store, case, examples, args.cap, args.seed)})
        print(f"{case.family:15s} {case.head:15s} {case.source}/{case.task}: {results[-1]['result']}", file=sys.stderr)
    matrix = domain_matrix(model, store, load_head_items(args.data, model.tasks), args.data, args.cap, args.seed)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "transfer.json").write_text(json.dumps(
        {"model": args.model.name, "cap": args.cap, "seed": args.seed, "topic_bound": list(TOPIC_BOUND),
         "cases": results, "domain_matrix": matrix}, indent=1) + "\n", encoding="utf-8")
    full, section = markdown(results, matrix, args.model.name)
    (RESULTS / "transfer.md").write_text(full, encoding="utf-8")
    title = f"Applicability ({args.model.name}: share of posts flagged out of domain)"
    put_section(RESULTS / "quality.md", title, section, name="applicability")
    if not args.no_card:
        card = next((args.model / n for n in ("README.md", "card.md") if (args.model / n).is_file()), None)
        if card is not None:
            put_section(card, title, section, name="applicability")
    print(full)


if __name__ == "__main__":
    main()
