"""`make bench`: every benchmark side by side in one run; tables on stdout, JSON under --out.

Ratios, not absolute times, are the results to compare across machines (this one has 2 shared cores).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from the repo root

from benchmarks import decode_bench, e2e_bench, period_bench, replay_bench

PARTS = ("period", "decode", "replay", "e2e")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("OUT/bench"))
    parser.add_argument("--only", choices=PARTS, action="append", help="run only these parts (repeatable)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    todo = args.only or list(PARTS)
    results = {}
    if "period" in todo:
        results["period"] = period_bench.run(args.out)
    if "decode" in todo:
        results["decode"] = decode_bench.run(args.out)
    if "replay" in todo or "e2e" in todo:
        from broker.offline.local_kafka import LocalKafka

        with LocalKafka() as kafka:
            if "replay" in todo:
                results["replay"] = replay_bench.run(args.out, bootstrap=kafka.bootstrap_servers)
                print("\nReplay as fast as possible, one core")
                for case in results["replay"]["cases"]:
                    print(f"{case['flavour']:5} -> {case['sink']:7} {case['alerts_per_s']:8.0f} alerts/s")
            if "e2e" in todo:
                results["e2e"] = e2e_bench.run(args.out, kafka)
    (args.out / "bench.json").write_text(json.dumps(results, indent=2, default=float))
    print(f"\nwritten to {args.out}/bench.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
