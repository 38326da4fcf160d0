#!/usr/bin/env python3
"""Benchmark of the message layer against the raw lxml floor.

    .venv/bin/python bench/bench_messages.py [--file PATH] [--strict] [--budget S]
                                             [--breakdown] [--profile decode|encode]

For each input (a typical ~2 KB request) it measures, in one run and interleaved in rounds:

    floor    etree.fromstring(data, inbound._PARSER) + schema.validate(root), same bytes
    decode   gateway.messages.decode(data): hardened parse, envelope check, validation, model
    encode   gateway.messages.encode(message, version): model -> lxml tree, validation, bytes

Each operation runs N iterations per round, rounds rotate the order of the operations, and the
reported figure is the median of the per-round means; p99 comes from one separate pass timing
every single call. Both decode and encode are compared with the same floor; the target is a
ratio <= 3.0 for both. Exit status is 0 unless --strict and a ratio misses the target.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import platform
import pstats
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from lxml import etree  # noqa: E402

from gateway.messages import MessageError, Version, decode, encode  # noqa: E402
from gateway.messages.codec import read_message, to_tree  # noqa: E402
from gateway.messages.inbound import _PARSER  # noqa: E402
from gateway.messages.schemas import schema_for  # noqa: E402

TARGET_RATIO = 3.0
FIXTURE_2017 = REPO / "fixtures" / "valid" / "2017" / "request-book-loan.xml"
FIXTURE_2021_DIR = REPO / "fixtures" / "valid" / "2021"
# Read in place at run time; never copied into the repository.
CORPUS_FALLBACK = Path(
    "/work/shared/iso18626-corpus/indexdata+crosslink/broker/test/testdata/request-retry-1.xml"
)

perf_ns = time.perf_counter_ns


@dataclass
class Op:
    name: str
    fn: Callable[[], object]
    main: bool = True  # part of the required table (breakdown rows are informative only)


@dataclass
class Result:
    name: str
    median_us: float
    round_means_us: list[float]
    p99_us: float
    main: bool


# --- inputs --------------------------------------------------------------------------------

def default_inputs(files: list[str] | None, with_2021: bool) -> list[Path]:
    if files:
        chosen = [Path(f) for f in files]
    elif FIXTURE_2017.is_file():
        chosen = [FIXTURE_2017]
    else:
        chosen = [CORPUS_FALLBACK]
    if with_2021 and FIXTURE_2021_DIR.is_dir():
        preferred = FIXTURE_2021_DIR / "request-book-loan.xml"
        candidates = [preferred] if preferred.is_file() else sorted(FIXTURE_2021_DIR.glob("request*.xml"))
        for path in candidates:
            if is_request(path.read_bytes()):
                if path.resolve() not in {c.resolve() for c in chosen}:
                    chosen.append(path)
                break
    return chosen


def is_request(data: bytes) -> bool:
    try:
        return decode(data).kind == "request"
    except Exception:
        return False


# --- timing --------------------------------------------------------------------------------

def time_block(fn: Callable[[], object], n: int) -> float:
    """Mean ns per call over n back-to-back calls."""
    t0 = perf_ns()
    for _ in range(n):
        fn()
    return (perf_ns() - t0) / n


def single_calls(fn: Callable[[], object], n: int) -> list[int]:
    out = [0] * n
    for i in range(n):
        t0 = perf_ns()
        fn()
        out[i] = perf_ns() - t0
    return out


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return float(ordered[k])


def run_ops(ops: list[Op], rounds: int, seconds_per_block: float, p99_calls: int) -> list[Result]:
    # Warm up (schema compiled, plans cached, allocator settled) and estimate one call.
    est: dict[str, float] = {}
    for op in ops:
        time_block(op.fn, 50)
        est[op.name] = time_block(op.fn, 200)
    iters = {op.name: max(50, int(seconds_per_block * 1e9 / est[op.name])) for op in ops}

    means: dict[str, list[float]] = {op.name: [] for op in ops}
    for r in range(rounds):
        k = r % len(ops)
        for op in ops[k:] + ops[:k]:  # rotate the order each round to spread drift evenly
            gc.collect()
            means[op.name].append(time_block(op.fn, iters[op.name]) / 1000)

    p99: dict[str, float] = {}
    for op in ops:
        gc.collect()
        p99[op.name] = percentile(single_calls(op.fn, p99_calls), 0.99) / 1000

    return [
        Result(op.name, statistics.median(means[op.name]), means[op.name], p99[op.name], op.main)
        for op in ops
    ]


# --- per input -----------------------------------------------------------------------------

def build_ops(data: bytes, breakdown: bool) -> tuple[list[Op], Version, str]:
    try:
        inbound = decode(data)  # refuse an unusable input before any timing
    except MessageError as err:
        raise SystemExit(f"input does not decode: {err}") from None
    version, message = inbound.version, inbound.message
    schema = schema_for(version)
    if not schema.validate(etree.fromstring(data, _PARSER)):
        raise SystemExit(f"input does not validate against our {version.label} schema: {schema.error_log[0]}")
    encode(message, version)  # must not raise either
    fromstring, validate = etree.fromstring, schema.validate

    def floor() -> object:
        return validate(fromstring(data, _PARSER))

    ops = [
        Op("floor: fromstring + schema.validate", floor),
        Op("decode(data)", lambda: decode(data)),
        Op("encode(message, version)", lambda: encode(message, version)),
    ]
    if breakdown:
        root = etree.fromstring(data, _PARSER)
        tree = to_tree(message, version)
        ops += [
            Op("  parse only (fromstring)", lambda: fromstring(data, _PARSER), False),
            Op("  validate only (parsed tree)", lambda: validate(root), False),
            Op("  read_message (tree -> model)", lambda: read_message(root, version), False),
            Op("  to_tree (model -> tree)", lambda: to_tree(message, version), False),
            Op("  validate only (built tree)", lambda: validate(tree), False),
            Op("  tostring (built tree)", lambda: etree.tostring(tree, xml_declaration=True, encoding="UTF-8"), False),
        ]
    return ops, version, inbound.kind


def table(results: list[Result]) -> tuple[str, dict[str, float]]:
    floor = results[0].median_us
    lines = [
        "| operation | median µs/msg | p99 µs | msgs/s on one core | ratio vs floor |",
        "|---|---:|---:|---:|---:|",
    ]
    ratios: dict[str, float] = {}
    for r in results:
        ratio = r.median_us / floor
        if r.main and r is not results[0]:
            ratios[r.name] = ratio
        lines.append(
            f"| {r.name} | {r.median_us:,.1f} | {r.p99_us:,.1f} | {1e6 / r.median_us:,.0f} | {ratio:.2f}× |"
        )
    return "\n".join(lines), ratios


def profile(data: bytes, which: str, seconds: float, top: int) -> None:
    inbound = decode(data)
    fn = (lambda: decode(data)) if which == "decode" else (lambda: encode(inbound.message, inbound.version))
    n = max(100, int(seconds * 1e9 / time_block(fn, 200)))
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        fn()
    prof.disable()
    print(f"\n### cProfile of {which}, {n} calls (times are totals; divide by {n} per message)\n")
    stats = pstats.Stats(prof, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", action="append", metavar="PATH",
                    help="input message (repeatable); replaces the default 2017 request")
    ap.add_argument("--no-2021", action="store_true", help="skip the fixtures/valid/2021 request")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--budget", type=float, default=20.0,
                    help="approximate seconds of timed work for the whole run (default 20)")
    ap.add_argument("--p99-calls", type=int, default=3000, help="single calls per operation for p99")
    ap.add_argument("--breakdown", action="store_true",
                    help="add informative rows: parse, validate, tree->model, model->tree, tostring")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a ratio misses the target")
    ap.add_argument("--profile", choices=("decode", "encode"),
                    help="skip the timing table; cProfile that operation on the first input")
    ap.add_argument("--top", type=int, default=25, help="rows per cProfile listing")
    args = ap.parse_args(argv)

    inputs = default_inputs(args.file, not args.no_2021)
    for path in inputs:
        if not path.is_file():
            ap.error(f"no such file: {path}")

    if args.profile:
        profile(inputs[0].read_bytes(), args.profile, min(args.budget, 10.0), args.top)
        return 0

    import lxml

    print("# Message-layer benchmark\n")
    print(f"Python {platform.python_version()} ({platform.python_implementation()}), "
          f"lxml {lxml.__version__}, libxml2 {'.'.join(map(str, etree.LIBXML_VERSION))}, "
          f"{platform.machine()}; {args.rounds} rounds, median of per-round means; "
          f"p99 over {args.p99_calls} single calls; load average {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs at start.")

    ops_per_input = 9 if args.breakdown else 3
    # ~80% of the budget in the rounds, the rest in the p99 passes and warm-up.
    seconds_per_block = 0.8 * args.budget / (len(inputs) * ops_per_input * args.rounds)

    verdicts: list[tuple[str, str, float]] = []
    for path in inputs:
        data = path.read_bytes()
        ops, version, kind = build_ops(data, args.breakdown)
        print(f"\n## {path.name}: {kind}, {version.label} schema (ill:version {version.value}), {len(data):,} bytes\n")
        print(f"`{path}`\n")
        results = run_ops(ops, args.rounds, seconds_per_block, args.p99_calls)
        text, ratios = table(results)
        print(text)
        spread = ", ".join(f"{r.name.split(':')[0].split('(')[0].strip()} {max(r.round_means_us) / min(r.round_means_us) - 1:.0%}"
                           for r in results if r.main)
        print(f"\nSpread of the {args.rounds} round means (max/min - 1): {spread}")
        for name, ratio in ratios.items():
            verdicts.append((f"{path.parent.name}/{path.name} {name.split('(')[0]}", "ok" if ratio <= TARGET_RATIO else "MISS", ratio))

    passed = all(v == "ok" for _, v, _ in verdicts)
    detail = ", ".join(f"{name} {ratio:.2f}×" + ("" if v == "ok" else " (miss)") for name, v, ratio in verdicts)
    print(f"\n{'PASS' if passed else 'FAIL'}: target ratio <= {TARGET_RATIO} vs floor for decode and encode — {detail}")
    return 1 if (args.strict and not passed) else 0


if __name__ == "__main__":
    sys.exit(main())
