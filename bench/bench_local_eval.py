"""Local evaluation: µs per resolve in the flagstaff engine, against GrowthBook and Flagsmith.

One flag shape, evaluated by three engines over the same 10,000 distinct contexts:

- three targeting rules whose constraints never match the contexts (IN on `plan`,
  STR_ENDS_WITH caseInsensitive on `email`, SEMVER_LT on `appVersion`), so every call checks
  all three and goes on to
- a 10 % split on `targetingKey` (candidate 10 %, control band 10 %, baseline 80 %).

Engines and the calls timed:

- flagstaff engine: `flagstaff.engine.resolve(flag, context)` (the compiled `FlagDefinition`);
- flagstaff client: `Flagstaff.from_file(snapshot).resolve(flag, context)`, the whole local
  path a service calls (snapshot lookup, engine, staleness, the `ResolvedConfig` of the
  outcome, made on first use and shared per snapshot);
- `growthbook` (sync SDK): a feature with three force rules with conditions (`$in`, `$regexi`
  for a case-insensitive suffix, `$vlt`) and an experiment rule with weights 10/10/80 hashed
  on `id`; per context `gb.set_attributes(attrs)` then `gb.eval_feature(key)`;
- `flagsmith-flag-engine`: an evaluation context with three segments (IN, REGEX `(?i)`,
  LESS_THAN `:semver`) overriding the feature, and a multivariate 10/10 split (rest control);
  per context `get_evaluation_result({**environment, "identity": {...}})`.

Each engine runs REPEATS passes over the contexts in batches of BATCH calls (timeit-style:
the clock is read once per batch). Reported: the median over passes of µs per call, and the
99th percentile of the per-call time of the batches. A sanity check prints each engine's
share of candidates (about 10 %).

Targets (issue 3, item 11a): flagstaff median <= 5 µs, and >= 3x faster than both peers.

    .venv/bin/python bench/bench_local_eval.py [--contexts N] [--repeats N]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from flagstaff import Flagstaff
from flagstaff.engine import compile_segments, flag_from_dict, resolve

BATCH = 100
TARGET_MEDIAN_US = 5.0
TARGET_RATIO = 3.0
FLAG_KEY = "support-chat"
SEED = "7f3a9c0b5e21d4aa"

CONSTRAINT_RULES: list[dict[str, Any]] = [
    {
        "constraints": [{"contextName": "plan", "operator": "IN", "values": ["enterprise", "team"]}],
        "version": 4,
    },
    {
        "constraints": [
            {
                "contextName": "email",
                "operator": "STR_ENDS_WITH",
                "values": ["@example.com"],
                "caseInsensitive": True,
            }
        ],
        "version": 5,
    },
    {"constraints": [{"contextName": "appVersion", "operator": "SEMVER_LT", "value": "2.0.0"}], "version": 6},
]


def make_contexts(count: int) -> list[dict[str, str]]:
    """Distinct contexts that match none of the three rules (so all reach the split)."""
    plans = ("free", "pro", "starter")
    domains = ("other.org", "mail.net", "corp.io")
    return [
        {
            "targetingKey": f"user-{i:06d}",
            "plan": plans[i % 3],
            "email": f"person{i}@{domains[i % 3]}",
            "appVersion": f"2.{i % 7}.{i % 11}",
        }
        for i in range(count)
    ]


def snapshot_document() -> dict[str, Any]:
    contents = {f"h{v}": {"model": "claude-sonnet-5-5", "max_tokens": 256 * v} for v in range(3, 8)}
    return {
        "format": 1,
        "environment": "production",
        "revision": 1,
        "generated_at": "2026-11-25T00:00:00Z",
        "segments": {},
        "flags": {
            FLAG_KEY: {
                "key": FLAG_KEY,
                "enabled": True,
                "version": 3,
                "stickiness": "targetingKey",
                "surface": "chat",
                "rules": CONSTRAINT_RULES,
                "rollout": {"id": "split-1", "seed": SEED, "candidate": 7, "weight": 1000},
                "experiment": None,
                "versions": {str(v): f"h{v}" for v in range(3, 8)},
            }
        },
        "contents": contents,
    }


def growthbook_features() -> dict[str, Any]:
    return {
        FLAG_KEY: {
            "defaultValue": "v3",
            "rules": [
                {"condition": {"plan": {"$in": ["enterprise", "team"]}}, "force": "v4"},
                {"condition": {"email": {"$regexi": r"@example\.com$"}}, "force": "v5"},
                {"condition": {"appVersion": {"$vlt": "2.0.0"}}, "force": "v6"},
                {
                    "key": "split-1",
                    "seed": SEED,
                    "hashVersion": 2,
                    "hashAttribute": "id",
                    "variations": ["v7", "v3", "v3"],
                    "weights": [0.1, 0.1, 0.8],
                    "coverage": 1.0,
                },
            ],
        }
    }


def flagsmith_context() -> dict[str, Any]:
    def segment(key: str, condition: dict[str, Any], value: str, priority: int) -> dict[str, Any]:
        override = {"key": f"{FLAG_KEY}-{key}", "name": FLAG_KEY, "enabled": True, "value": value}
        override["priority"] = priority
        return {
            "key": key,
            "name": key,
            "rules": [{"type": "ALL", "conditions": [condition]}],
            "overrides": [override],
        }

    return {
        "environment": {"key": "production", "name": "Production"},
        "segments": {
            "1": segment(
                "1", {"property": "plan", "operator": "IN", "value": ["enterprise", "team"]}, "v4", 0
            ),
            "2": segment(
                "2", {"property": "email", "operator": "REGEX", "value": r"(?i).*@example\.com$"}, "v5", 1
            ),
            "3": segment(
                "3", {"property": "appVersion", "operator": "LESS_THAN", "value": "2.0.0:semver"}, "v6", 2
            ),
        },
        "features": {
            FLAG_KEY: {
                "key": "1",
                "name": FLAG_KEY,
                "enabled": True,
                "value": "v3",
                "variants": [
                    {"key": "candidate", "value": "v7", "weight": 10.0, "priority": 0},
                    {"key": "control", "value": "v3", "weight": 10.0, "priority": 1},
                ],
            }
        },
    }


def measure(call: Callable[[Any], object], inputs: Sequence[Any], repeats: int) -> tuple[float, float]:
    """(median over passes of µs per call, p99 over batches of µs per call)."""
    batches = [inputs[i : i + BATCH] for i in range(0, len(inputs), BATCH)]
    for item in inputs[: 2 * BATCH]:  # warm-up: caches, lazily compiled patterns
        call(item)
    per_pass: list[float] = []
    per_batch: list[float] = []
    clock = time.perf_counter
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            total = 0.0
            for batch in batches:
                began = clock()
                for item in batch:
                    call(item)
                elapsed = clock() - began
                total += elapsed
                per_batch.append(elapsed / len(batch) * 1e6)
            per_pass.append(total / len(inputs) * 1e6)
    finally:
        if gc_was_enabled:
            gc.enable()
    per_batch.sort()
    return statistics.median(per_pass), per_batch[min(len(per_batch) - 1, int(len(per_batch) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--contexts", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    import growthbook
    from flag_engine.engine import get_evaluation_result

    contexts = make_contexts(args.contexts)
    document = snapshot_document()
    flag = flag_from_dict(document["flags"][FLAG_KEY], segments=compile_segments(document["segments"]))

    with tempfile.TemporaryDirectory(prefix="flagstaff-bench-") as tmp:
        path = Path(tmp) / "snapshot.json"
        path.write_text(json.dumps(document))
        client = Flagstaff.from_file(path)

    gb = growthbook.GrowthBook(features=growthbook_features())
    gb_attributes = [
        {"id": c["targetingKey"], "plan": c["plan"], "email": c["email"], "appVersion": c["appVersion"]}
        for c in contexts
    ]

    def growthbook_eval(attributes: dict[str, Any]) -> object:
        gb.set_attributes(attributes)
        return gb.eval_feature(FLAG_KEY).value

    fs_base = flagsmith_context()
    fs_identities = [
        {"identifier": c["targetingKey"], "traits": {k: v for k, v in c.items() if k != "targetingKey"}}
        for c in contexts
    ]

    def flagsmith_eval(identity: dict[str, Any]) -> object:
        return get_evaluation_result({**fs_base, "identity": identity})["flags"][FLAG_KEY]["value"]  # type: ignore[typeddict-item]

    # Sanity: the same flag shape everywhere (no rule matches; about 10 % get the candidate).
    shares = {
        "flagstaff": sum(resolve(flag, c).value_version == 7 for c in contexts) / len(contexts),
        "growthbook": sum(growthbook_eval(a) == "v7" for a in gb_attributes) / len(contexts),
        "flagsmith": sum(flagsmith_eval(i) == "v7" for i in fs_identities) / len(contexts),
    }
    assert all(resolve(flag, c).reason == "SPLIT" for c in contexts[:1000])
    assert {growthbook_eval(a) for a in gb_attributes[:1000]} <= {"v3", "v7"}
    assert {flagsmith_eval(i) for i in fs_identities[:1000]} <= {"v3", "v7"}

    load_before = os.getloadavg()
    results: dict[str, tuple[float, float]] = {}
    results["flagstaff engine"] = measure(lambda c: resolve(flag, c), contexts, args.repeats)
    results["flagstaff client"] = measure(lambda c: client.resolve(FLAG_KEY, c), contexts, args.repeats)
    peer_repeats = max(3, args.repeats // 3)
    results["growthbook"] = measure(growthbook_eval, gb_attributes, peer_repeats)
    results["flagsmith-flag-engine"] = measure(flagsmith_eval, fs_identities, peer_repeats)

    from importlib.metadata import version

    print(
        f"cores: {os.cpu_count()}  load average before: {load_before[0]:.2f} {load_before[1]:.2f}"
        f" {load_before[2]:.2f}  contexts: {len(contexts):,}  batch: {BATCH} calls"
        f"  passes: {args.repeats} (peers {peer_repeats})"
    )
    print(
        f"peers: growthbook {version('growthbook')}, flagsmith-flag-engine {version('flagsmith-flag-engine')}"
    )
    print("flag: 3 rules (IN, STR_ENDS_WITH caseInsensitive, SEMVER_LT; none match) + a 10 % split")
    print()
    ours = results["flagstaff engine"][0]
    ours_client = results["flagstaff client"][0]
    print(
        f"{'engine':<24}{'median µs':>11}{'p99 µs':>10}{'candidates':>12}{'vs engine':>11}{'vs client':>11}"
    )
    for name, (median, p99) in results.items():
        share = shares.get(name.split()[0], shares["flagstaff"])
        print(
            f"{name:<24}{median:>11.2f}{p99:>10.2f}{share:>12.1%}"
            f"{median / ours:>10.1f}x{median / ours_client:>10.1f}x"
        )
    print()
    worst_peer = min(results["growthbook"][0], results["flagsmith-flag-engine"][0])
    checks = [
        (f"flagstaff engine median <= {TARGET_MEDIAN_US:g} µs", ours <= TARGET_MEDIAN_US),
        (f"engine >= {TARGET_RATIO:g}x faster than both peers", worst_peer / ours >= TARGET_RATIO),
        (f"flagstaff client median <= {TARGET_MEDIAN_US:g} µs", ours_client <= TARGET_MEDIAN_US),
        (f"client >= {TARGET_RATIO:g}x faster than both peers", worst_peer / ours_client >= TARGET_RATIO),
    ]
    for label, met in checks:
        print(f"target: {label}: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
