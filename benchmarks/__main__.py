"""Command line: ``python -m benchmarks run ...`` and ``python -m benchmarks report ...``.

python -m benchmarks run --scale ci|small|full [--only W1,W4] [--systems lakehouse,deltalake]
                         [--out DIR] [--repeat N] [--warmup N] [--jobs N]
                         [--reuse-fixtures] [--keep-work]
python -m benchmarks report RESULTS.json     # re-render results.md from a results.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks import SYSTEMS
from benchmarks.config import SCALES

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the benchmarks and write results.json / results.md")
    run.add_argument("--scale", choices=sorted(SCALES), default="ci")
    run.add_argument("--only", type=_csv, default=(), help="workloads or case ids, e.g. W1,W4")
    run.add_argument("--systems", type=_csv, default=SYSTEMS, help=f"subset of {','.join(SYSTEMS)}")
    run.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="output directory (also holds the cached input data)",
    )
    run.add_argument("--repeat", type=int, help="measured repetitions (default per scale)")
    run.add_argument("--warmup", type=int, help="discarded warm-up repetitions (default per scale)")
    run.add_argument(
        "--jobs",
        type=int,
        help="cases run at once (default 2 at ci, else 1; above 1 timings overlap: smoke runs only)",
    )
    run.add_argument(
        "--reuse-fixtures",
        action="store_true",
        help="keep fixture tables from an earlier run of this scale (faster reruns)",
    )
    run.add_argument("--keep-work", action="store_true", help="keep fixture tables after the run")
    report = sub.add_parser("report", help="re-render results.md from results.json")
    report.add_argument("results", type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "report":
        from benchmarks.report import render_markdown

        summary = json.loads(args.results.read_text())
        args.results.with_suffix(".md").write_text(render_markdown(summary))
        return 0

    from benchmarks.harness import Options, run

    unknown = [s for s in args.systems if s not in SYSTEMS]
    if unknown:
        print(
            f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}",
            file=sys.stderr,
        )
        return 2
    scale = SCALES[args.scale]
    repeat = scale.repeat if args.repeat is None else args.repeat
    warmup = scale.warmup if args.warmup is None else args.warmup
    if repeat < 1 or warmup < 0:
        print("--repeat must be at least 1 and --warmup at least 0", file=sys.stderr)
        return 2
    shown = argv if argv is not None else sys.argv[1:]
    options = Options(
        scale=scale,
        out=args.out.resolve(),
        systems=tuple(s for s in SYSTEMS if s in args.systems),
        only=args.only,
        repeat=repeat,
        warmup=warmup,
        reuse_fixtures=args.reuse_fixtures,
        keep_work=args.keep_work,
        jobs=max(1, args.jobs if args.jobs is not None else scale.jobs),
        command="python -m benchmarks " + " ".join(shown),
    )
    try:
        run(options)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
