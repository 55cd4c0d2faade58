"""Response cache benchmark: the labelled workload through a real gateway, per threshold.

The questions of `orchestrator.loadgen.cache_workload` (repeats, paraphrases and
near-misses, each labelled with the topic whose answer is right) are asked `--rounds`
times in a shuffled order through the gateway on loopback with the official `openai` SDK,
to the scripted model server (answers name their topic; `/v1/embeddings` gives hashed
bag-of-words vectors). For each similarity threshold, on a fresh SQLite store: hit rate
(over all requests, and over those whose topic had been answered before), exact and
semantic hits, false hits (a served answer for another topic; those on labelled
near-misses apart), saved cost, embedding cost, and the time of a hit beside a miss.

    .venv/bin/python bench/cache.py
    .venv/bin/python bench/cache.py --rounds 5 --thresholds 0.95 0.9 0.8 0.7 0.6
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
from pathlib import Path

from orchestrator.loadgen.cache_workload import QUESTIONS, cache_gateway, run_workload

RESULTS = Path(__file__).resolve().parent / "results"


async def one(threshold: float, rounds: int, seed: int, cached: bool = True) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'cache.db'}"
        async with cache_gateway(url, similarity=threshold, cached=cached) as served:
            report = await run_workload(served, rounds=rounds, seed=seed)
    ms = {
        kind: round(statistics.median(values) * 1000, 2) for kind, values in report.seconds.items()
    }
    return {
        "threshold": threshold if cached else None,
        "requests": report.requests,
        "eligible": report.eligible,
        "exact_hits": report.exact_hits,
        "semantic_hits": report.semantic_hits,
        "hit_rate": round(report.hit_rate, 3),
        "eligible_hit_rate": round(report.eligible_hit_rate, 3),
        "false_hits": report.false_hits,
        "near_miss_false_hits": report.near_miss_false_hits,
        "saved_usd": round(report.saved_usd, 6),
        "spent_usd": round(report.spent_usd, 6),
        "embedding_usd": round(report.embedding_usd, 8),
        "median_ms": ms,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.95, 0.9, 0.8, 0.7, 0.6])
    args = parser.parse_args()
    near = sum(q.kind == "near_miss" for q in QUESTIONS)
    print(f"{len(QUESTIONS)} questions ({near} near-misses) x {args.rounds} rounds")
    rows = [await one(1.0, args.rounds, args.seed, cached=False)]
    rows += [await one(t, args.rounds, args.seed) for t in args.thresholds]
    header = (
        "threshold | hit rate | of eligible | exact | semantic | false hits (near-miss) |"
        " spent $ | saved $ | embeddings $ | median ms miss / exact / semantic"
    )
    print(header)
    for r in rows:
        ms = r["median_ms"]
        assert isinstance(ms, dict)
        print(
            f"{r['threshold'] or 'no cache'} | {r['hit_rate']:.1%} | {r['eligible_hit_rate']:.1%}"
            f" | {r['exact_hits']} | {r['semantic_hits']}"
            f" | {r['false_hits']} ({r['near_miss_false_hits']})"
            f" | {r['spent_usd']:.6f} | {r['saved_usd']:.6f} | {r['embedding_usd']:.8f}"
            f" | {ms.get('miss', '-')} / {ms.get('exact', '-')} / {ms.get('semantic', '-')}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cache.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
