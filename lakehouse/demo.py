"""``python -m lakehouse.demo [URI]`` (``make demo``): the seed workload end to end, narrated.

Creates a small synthetic "training data" table, appends to it, reads an old version, upserts
corrections with MERGE, shows the history, travels in time, compacts the small files and vacuums
them, printing what happens at each step. Without a URI the table lives in a temporary directory
that is removed at the end; with one (``s3://bucket/demo``, credentials from the environment's
``AWS_*`` variables or ``-o KEY=VALUE`` storage options) the same steps run there and the table is
left for you to inspect.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import tempfile
import warnings
from typing import Any

import polars as pl
from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

import lakehouse
from lakehouse import Table
from lakehouse.maintenance.describe import iso_ms

console = Console(highlight=False)


def _frame(start: int, n: int, seed: int) -> pl.DataFrame:
    """``n`` rows of synthetic labelled examples with ids ``start .. start + n - 1``."""
    ids = pl.int_range(start, start + n, eager=True)
    return pl.DataFrame({
        "id": ids,
        "split": ids.map_elements(lambda i: ("train", "train", "train", "valid", "test")[i % 5],
                                  return_dtype=pl.String),
        "text": ids.map_elements(lambda i: f"example sentence number {i}", return_dtype=pl.String),
        "label": ((ids * 7 + seed) % 3).cast(pl.Int32),
        "score": ((ids * 13 + seed) % 100).cast(pl.Float64) / 100.0,
    })


def _count(t: Table, filter: str | None = None) -> int:
    return t.to_arrow(columns=["id"], filter=filter).num_rows


def _step(n: int, title: str, why: str) -> None:
    console.print()
    console.rule(f"[bold cyan]{n}. {title}")
    console.print(f"[dim]{why}[/]")


def _kv(rows: dict[str, Any], title: str | None = None) -> None:
    t = RichTable(title=title, show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    for k, v in rows.items():
        t.add_row(k, escape(str(v)))
    console.print(t)


def _frame_table(df: pl.DataFrame, title: str) -> None:
    t = RichTable(title=title, title_justify="left")
    for c in df.columns:
        t.add_column(c)
    for row in df.iter_rows():
        t.add_row(*(escape(str(v)) for v in row))
    console.print(t)


def _metrics(m: Any) -> dict[str, Any]:
    if hasattr(m, "to_dict"):
        return dict(m.to_dict())
    if dataclasses.is_dataclass(m) and not isinstance(m, type):
        return dataclasses.asdict(m)
    return dict(m) if isinstance(m, dict) else {"result": m}


def run(uri: str, storage_options: dict[str, str] | None = None) -> None:
    """Run the narrated workload on a new table at ``uri``."""
    so = dict(storage_options or {})
    console.print(f"[bold]lakehouse {lakehouse.__version__} demo[/] on [green]{escape(uri)}[/]")

    _step(1, "Create", "Write 1,000 labelled examples partitioned by split (train/valid/test). "
                       "This commits version 0: Parquet files plus _delta_log/00..0.json.")
    t = lakehouse.write(uri, _frame(0, 1000, seed=1), partition_by="split",
                        description="synthetic training data", storage_options=so)
    _kv({"version": t.version, "rows": _count(t), "files": t.files().num_rows,
         "partitions": ", ".join(t.partition_columns)})

    _step(2, "Append", "Add 500 more examples in 5 micro-batches (as a stream would): each "
                       "append is one commit and never rewrites existing files.")
    for b in range(5):
        t.append(_frame(1000 + 100 * b, 100, seed=1))
    _kv({"version": t.version, "rows": _count(t), "files": t.files().num_rows})

    _step(3, "Read version 1", "Open the table as of version 1 (create + first micro-batch) and "
                               "count examples per split.")
    v1 = Table.open(uri, version=1, storage_options=so)
    per_split = v1.to_polars().group_by("split").agg(pl.len().alias("rows")).sort("split")
    _frame_table(per_split, f"version {v1.version}")

    _step(4, "MERGE upsert", "Relabel 100 existing examples and insert 50 new ones in one atomic "
                             "commit: matched ids are updated, unmatched ones inserted.")
    fixes = _frame(1400, 150, seed=2).with_columns(pl.lit("relabelled").alias("text"))
    metrics = t.merge(fixes, "target.id = source.id") \
        .when_matched_update_all().when_not_matched_insert_all().execute()
    m = _metrics(metrics)
    shown = {k: v for k, v in m.items()
             if any(s in k for s in ("inserted", "updated", "source_rows", "files_added",
                                     "files_removed", "copied", "version"))
             and "not_matched_by_source" not in k}
    t.refresh()
    _kv(shown or m, "merge metrics")
    _kv({"version": t.version, "rows": _count(t),
         "relabelled": _count(t, "text = 'relabelled'")})

    _step(5, "History", "Every commit records its operation, parameters and metrics.")
    hist = RichTable()
    for c in ("version", "operation", "parameters", "metrics"):
        hist.add_column(c, overflow="fold")
    for e in t.history():
        params = ", ".join(f"{k}={v}" for k, v in e["operationParameters"].items())
        mets = ", ".join(f"{k}={v}" for k, v in list(e["operationMetrics"].items())[:4])
        hist.add_row(str(e["version"]), e["operation"] or "", escape(params), escape(mets))
    console.print(hist)

    _step(6, "Time travel", "Old versions stay readable: by number or by commit time.")
    first = t.history()[-1]
    v0 = Table.open(uri, version=0, storage_options=so)
    v5 = Table.open(uri, version=5, storage_options=so)
    at_ts = Table.open(uri, timestamp=first["timestamp"], storage_options=so)
    _kv({"rows at version 0": _count(v0), f"rows at version {t.version} (latest)": _count(t),
         f"version at {iso_ms(first['timestamp'])}": at_ts.version,
         "row 1450 at version 5": v5.to_polars(filter="id = 1450")["text"].to_list(),
         "row 1450 now": t.to_polars(filter="id = 1450")["text"].to_list()})

    _step(7, "Optimize", "Appends and merges leave many small files; OPTIMIZE compacts each "
                         "partition into target-size files (dataChange=false: no row changes).")
    before = t.files().num_rows
    om = t.optimize()
    _kv({"files before": before, "files after": t.files().num_rows,
         "files removed": om.num_files_removed, "files added": om.num_files_added,
         "version": om.version, "rows (unchanged)": _count(t)})

    _step(8, "Vacuum (dry run)", "Files no longer referenced stay on storage so time travel "
                                 "keeps working; VACUUM deletes those removed more than the "
                                 "retention period ago (default 7 days). Today: nothing is due.")
    dry = t.vacuum(dry_run=True)
    _kv({"would delete (7-day retention)": len(dry.files)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dry0 = t.vacuum(retention_hours=0, enforce_retention=False, dry_run=True)
    _kv({"would delete (0-hour retention)": len(dry0.files),
         "e.g.": dry0.files[0] if dry0.files else "-"})

    _step(9, "Vacuum", "For the demo, vacuum with retention 0 (enforce_retention=False, CLI "
                       "--force). Safe only when no reader or writer uses old versions: "
                       "afterwards versions before the last rewrite can no longer be read.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = t.vacuum(retention_hours=0, enforce_retention=False)
    t.refresh()
    _kv({"deleted files": len(res.files), "bytes freed": f"{res.size_in_bytes:,}",
         "latest version": t.version, "rows still readable": _count(t)})
    try:
        _count(Table.open(uri, version=0, storage_options=so))
        console.print("version 0 is still readable")
    except Exception as e:  # expected: its files are gone
        console.print(f"[yellow]reading version 0 now fails, as expected:[/] "
                      f"{escape(str(e).splitlines()[0][:160])}")
    console.print()
    console.rule("[bold green]done")



def main(argv: list[str] | None = None) -> int:
    """``python -m lakehouse.demo [URI] [-o KEY=VALUE ...]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        console.print(__doc__)
        return 0
    options: dict[str, str] = {}
    while "-o" in args or "--storage-option" in args:
        i = args.index("-o") if "-o" in args else args.index("--storage-option")
        if i + 1 >= len(args) or "=" not in args[i + 1]:
            console.print("[red]usage: python -m lakehouse.demo [URI] [-o KEY=VALUE ...][/]")
            return 2
        key, _, value = args.pop(i + 1).partition("=")
        args.pop(i)
        options[key] = value
    if args:
        run(args[0], options)
        console.print(f"Inspect it with: [bold]lakehouse history {escape(args[0])}[/]")
        return 0
    tmp = tempfile.mkdtemp(prefix="lakehouse-demo-")
    try:
        run(f"{tmp}/training_data", options)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        console.print(f"[dim](temporary table in {escape(tmp)} removed)[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
