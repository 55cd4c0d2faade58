"""Learning router benchmark: a workload where one declared quality is wrong.

`small` declares 0.85 on `code` but really answers 45% of code tasks well; every failure
fails the step's `accept` check and escalates to `large` (see
`orchestrator.loadgen.learning` for the workload). Three routers route the same sessions:
the declared qualities with learning off (`static`), the default learning policy (prior
strength 10, evidence gate 3 standard errors, exploration off), and an oracle that knows
the true qualities. Printed: quality per dollar of each (and as a share of the oracle's),
the session from which every window of 30 sessions (pooled over the seeds) reaches 95%
of the oracle, when the learning router settles on the oracle's choices, and hard
constraint violations (PII sent to a deployment that may not receive it).

    .venv/bin/python bench/learning.py
    .venv/bin/python bench/learning.py --seeds 20 --sessions 600
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from orchestrator.loadgen.learning import summary

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--sessions", type=int, default=300)
    parser.add_argument("--window", type=int, default=30)
    args = parser.parse_args()

    figures = summary(list(range(args.seeds)), args.sessions, window=args.window)
    print(f"{args.seeds} seeds x {args.sessions} sessions (chat, code, extract in turn)")
    print(f"{'router':<10}{'quality/$':>11}{'of oracle':>11}{'2nd half':>10}{'violations':>12}")
    for kind, per_dollar in figures["per_dollar"].items():
        print(
            f"{kind:<10}{per_dollar:>11.2f}{figures['share_of_oracle'][kind]:>11.1%}"
            f"{figures['share_of_oracle_second_half'][kind]:>10.1%}"
            f"{figures['violations'][kind]:>12}"
        )
    reach = figures["reaches_95_from_session"]
    settled = figures["same_choice_as_oracle_from_session"]
    print(
        f"\nlearning reaches >= 95% of the oracle's quality per dollar from session"
        f" {reach['learning']} (every later {args.window}-session window); static: "
        f"{'never' if reach['static'] is None else reach['static']}"
    )
    print(
        f"learning makes the oracle's choice on every later session from session"
        f" {settled['median']} (median over seeds; not by the end in"
        f" {settled['never_in_seeds']} of {args.seeds})"
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "learning.json"
    out.write_text(json.dumps(figures, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
