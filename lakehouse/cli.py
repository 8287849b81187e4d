"""The ``lakehouse`` command line: inspect and maintain Delta tables from shells and cron.

Every command is a thin layer over a :class:`~lakehouse.table.Table` method, so the CLI and the
Python API behave the same. Output is a rich table for people, or JSON with ``--json`` for
scripts. Exit codes: 0 success, 1 error (one red line on stderr; ``--debug`` adds the traceback),
2 bad usage (unknown option, malformed argument, invalid value).

Credentials come from ``--storage-option KEY=VALUE`` (repeatable; fsspec or delta-rs names) or
from the environment (``AWS_*``, ``AZURE_*``, ``GOOGLE_*``), which fsspec reads itself.

Example::

    lakehouse history s3://bucket/events --limit 5
    lakehouse vacuum ./events --retention-hours 0 --force --dry-run
    lakehouse restore ./events --version 12
"""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

if TYPE_CHECKING:
    from lakehouse.table import Table

__all__ = ["app", "main"]

app = typer.Typer(name="lakehouse", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False,
                  help="Inspect and maintain Delta Lake tables (local paths, s3://, az://, gs://).")
properties_app = typer.Typer(no_args_is_help=True, help="Set or unset table properties.")
constraints_app = typer.Typer(no_args_is_help=True, help="Add or drop CHECK constraints.")
app.add_typer(properties_app, name="properties")
app.add_typer(constraints_app, name="constraints")

out = Console(highlight=False)
if not out.is_terminal:  # piped: do not squeeze tables into 80 columns
    out = Console(highlight=False, width=160)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class _Globals:
    storage_options: list[str]
    debug: bool


StorageOpt = Annotated[list[str] | None, typer.Option(
    "--storage-option", "-o", metavar="KEY=VALUE",
    help="Storage option (repeatable), e.g. AWS_ENDPOINT_URL=http://localhost:9000.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Uri = Annotated[str, typer.Argument(metavar="URI",
                                    help="Table location: a path or s3://, az://, gs:// URI.")]
VersionOpt = Annotated[int | None, typer.Option("--version", min=0, help="Table version to read.")]
TimestampOpt = Annotated[str | None, typer.Option(
    "--timestamp", help="Read the version current at this time (ISO-8601 or epoch ms).")]


@app.callback()
def _root(ctx: typer.Context, storage_option: StorageOpt = None, debug: Debug = False) -> None:
    ctx.obj = _Globals(list(storage_option or []), debug)


# ----------------------------------------------------------------------------------- plumbing
def _globals(ctx: typer.Context) -> _Globals:
    root = ctx.find_root()
    obj = root.obj
    return obj if isinstance(obj, _Globals) else _Globals([], False)


def _options(ctx: typer.Context, extra: Sequence[str] | None) -> dict[str, str]:
    opts: dict[str, str] = {}
    for item in [*_globals(ctx).storage_options, *(extra or [])]:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}",
                                     param_hint="--storage-option")
        opts[key.strip()] = value
    return opts


def _fail(exc: BaseException, code: int, debug: bool) -> NoReturn:
    if debug:
        err.print("".join(traceback.format_exception(exc)), markup=False)
    text = " ".join(str(exc).split()) or type(exc).__name__
    err.print(f"[bold red]error:[/] [red]{escape(text)}[/]")
    raise typer.Exit(code)


@contextlib.contextmanager
def _guard(ctx: typer.Context, debug: bool) -> Iterator[None]:
    """Turn errors into one red line and the right exit code; warnings into yellow lines."""
    from lakehouse.errors import InvalidArgumentError, LakehouseError

    debug = debug or _globals(ctx).debug
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        for w in caught:
            if not issubclass(w.category, UserWarning):
                continue  # library deprecation noise is not for CLI users
            err.print(f"[bold yellow]warning:[/] [yellow]{escape(str(w.message))}[/]")
    except (typer.Exit, typer.Abort, typer.BadParameter):
        raise
    except InvalidArgumentError as e:
        _fail(e, 2, debug)
    except LakehouseError as e:
        _fail(e, 1, debug)
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]")
        raise typer.Exit(130) from None
    except Exception as e:  # storage, network, permission errors: still one line
        _fail(e if str(e) else RuntimeError(f"{type(e).__name__} (rerun with --debug)"), 1, debug)


def _open(ctx: typer.Context, uri: str, extra: Sequence[str] | None, version: int | None = None,
          timestamp: str | None = None) -> Table:
    from lakehouse.table import Table

    ts: Any = int(timestamp) if timestamp is not None and timestamp.isdigit() else timestamp
    return Table.open(uri, version=version, timestamp=ts, storage_options=_options(ctx, extra))


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def _human(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


def _compact(d: Any) -> str:
    if not d:
        return ""
    if isinstance(d, dict):
        return ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in d.items())
    return str(d)


def _kv_table(title: str, rows: Sequence[tuple[str, Any]]) -> RichTable:
    t = RichTable(title=title, show_header=False, title_justify="left")
    t.add_column(style="bold cyan")
    t.add_column(overflow="fold")
    for k, v in rows:
        t.add_row(k, escape("-" if v is None else str(v)))
    return t


# ------------------------------------------------------------------------------------ reading
@app.command()
def history(ctx: typer.Context, uri: Uri,
            limit: Annotated[int | None, typer.Option("--limit", "-n", min=1,
                                                      help="Newest N commits.")] = None,
            json_: Json = False, storage_option: StorageOpt = None, debug: Debug = False) -> None:
    """Commits newest first: version, time, operation, parameters, metrics."""
    from lakehouse.maintenance.describe import iso_ms

    with _guard(ctx, debug):
        entries = _open(ctx, uri, storage_option).history(limit)
        if json_:
            _print_json(entries)
            return
        t = RichTable(title=f"History of {escape(uri)}", title_justify="left")
        for col in ("version", "timestamp", "operation", "parameters", "metrics"):
            t.add_column(col, overflow="fold", justify="right" if col == "version" else "left")
        for e in entries:
            t.add_row(str(e["version"]), iso_ms(e["timestamp"]) or "", e["operation"] or "",
                      escape(_compact(e["operationParameters"])),
                      escape(_compact(e["operationMetrics"])))
        out.print(t)


@app.command()
def describe(ctx: typer.Context, uri: Uri, version: VersionOpt = None,
             timestamp: TimestampOpt = None, json_: Json = False,
             storage_option: StorageOpt = None, debug: Debug = False) -> None:
    """Location, version, protocol, schema, partitioning, properties and data size."""
    with _guard(ctx, debug):
        d = _open(ctx, uri, storage_option, version, timestamp).describe()
        if json_:
            _print_json(d)
            return
        p = d["protocol"]
        fs = d["fileSize"]
        out.print(_kv_table(f"Table {escape(uri)}", [
            ("location", d["location"]), ("version", d["version"]), ("name", d["name"]),
            ("id", d["id"]), ("created", d["createdAt"]), ("last modified", d["lastModified"]),
            ("last operation", d["lastOperation"]),
            ("protocol", f"reader {p['minReaderVersion']}, writer {p['minWriterVersion']}"),
            ("features", ", ".join(d["tableFeatures"]) or "-"),
            ("partition columns", ", ".join(d["partitionColumns"]) or "-"),
            ("files", f"{d['numFiles']:,}"), ("size", _human(d["sizeInBytes"])),
            ("file size min/p50/max", f"{_human(fs['min'])} / {_human(fs['p50'])} / "
                                      f"{_human(fs['max'])}"),
            ("rows", "-" if d["numRows"] is None else f"{d['numRows']:,}"),
        ]))
        out.print(_schema_table(d["schema"]))
        if d["properties"]:
            out.print(_kv_table("Properties", sorted(d["properties"].items())))


def _schema_table(fields: list[dict[str, Any]]) -> RichTable:
    t = RichTable(title="Schema", title_justify="left", min_width=30)
    t.add_column("column", style="bold")
    t.add_column("type", overflow="fold")
    t.add_column("nullable")
    for f in fields:
        t.add_row(escape(f["name"]), escape(f["type"]), "yes" if f["nullable"] else "no")
    return t


@app.command()
def schema(ctx: typer.Context, uri: Uri, version: VersionOpt = None, json_: Json = False,
           storage_option: StorageOpt = None, debug: Debug = False) -> None:
    """The table schema (``--json``: Delta's schema JSON)."""
    from lakehouse.maintenance.describe import type_string

    with _guard(ctx, debug):
        snap = _open(ctx, uri, storage_option, version).snapshot
        if json_:
            _print_json(json.loads(snap.metadata.schema_string))
            return
        out.print(_schema_table([{"name": f.name, "type": type_string(f.type),
                                  "nullable": f.nullable} for f in snap.schema.fields]))


@app.command()
def files(ctx: typer.Context, uri: Uri, version: VersionOpt = None, json_: Json = False,
          storage_option: StorageOpt = None, debug: Debug = False) -> None:
    """Active data files: path, partition values, size, rows, deleted rows."""
    from lakehouse.scan.stats import parse_stats

    with _guard(ctx, debug):
        ft = _open(ctx, uri, storage_option, version).files()
        records = parse_stats(ft["stats"], {}).num_records.to_pylist() if ft.num_rows else []
        rows = []
        cols = ft.select(["canonical_path", "partitionValues", "size", "modificationTime",
                          "deletionVector"]).to_pylist()
        for r, n in zip(cols, records, strict=True):
            dv = r["deletionVector"]
            rows.append({"path": r["canonical_path"],
                         "partitionValues": dict(r["partitionValues"] or ()),
                         "size": r["size"], "modificationTime": r["modificationTime"],
                         "numRecords": n, "deletedRows": dv["cardinality"] if dv else 0})
        if json_:
            _print_json(rows)
            return
        t = RichTable(title=f"{len(rows)} file(s), {_human(sum(r['size'] or 0 for r in rows))}",
                      title_justify="left")
        t.add_column("path", overflow="fold")
        t.add_column("size", justify="right")
        t.add_column("rows", justify="right")
        t.add_column("deleted", justify="right")
        for r in rows:
            t.add_row(escape(r["path"]), _human(r["size"]),
                      "-" if r["numRecords"] is None else f"{r['numRecords']:,}",
                      str(r["deletedRows"]))
        out.print(t)


def _head(table: Table, limit: int, columns: list[str] | None, where: str | None) -> Any:
    """The first ``limit`` rows (matching ``where``), reading a few files at a time."""
    import dataclasses

    import pyarrow as pa

    from lakehouse.errors import InvalidArgumentError
    from lakehouse.expressions import referenced_columns
    from lakehouse.scan import Scan

    snap = table.snapshot
    names = table.schema.names
    cols = columns or names
    unknown = [c for c in cols if c not in names]
    needed = sorted(referenced_columns(where)) if where else []
    unknown += [c for c in needed if c not in names]
    if unknown:
        raise InvalidArgumentError(f"unknown column(s) {unknown}; the table has {names}")
    scan = Scan(snap).filter(where) if where else Scan(snap)
    candidates = scan.files()
    read_cols = list(dict.fromkeys([*cols, *needed]))
    parts: list[pa.Table] = []
    got = 0
    step = 8
    for start in range(0, candidates.num_rows, step):
        sub = dataclasses.replace(snap, files=candidates.slice(start, step))
        for t in Scan(sub).iter_tables(read_cols):
            if where:
                t = t.filter(table.engine.filter_mask(t, where))
            parts.append(t.select(cols))
            got += t.num_rows
        if got >= limit:
            break
    schema = pa.schema([snap.arrow_schema.field(c) for c in cols])
    result = pa.concat_tables(parts) if parts else schema.empty_table()
    return result.slice(0, limit)


@app.command()
def show(ctx: typer.Context, uri: Uri,
         limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="Rows to show.")] = 20,
         version: VersionOpt = None, timestamp: TimestampOpt = None,
         columns: Annotated[str | None, typer.Option("--columns", "-c",
                                                     help="Comma-separated columns.")] = None,
         where: Annotated[str | None, typer.Option("--where", help="SQL row filter.")] = None,
         json_: Json = False, storage_option: StorageOpt = None, debug: Debug = False) -> None:
    """The first rows of a version (optionally filtered and projected)."""
    with _guard(ctx, debug):
        table = _open(ctx, uri, storage_option, version, timestamp)
        cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
        data = _head(table, limit, cols, where)
        if json_:
            _print_json(data.to_pylist())
            return
        out.print(f"[bold]{escape(uri)}[/] @ version {table.version}: first {data.num_rows} "
                  "row(s)")
        t = RichTable()
        for name in data.column_names:
            t.add_column(escape(name), overflow="fold")
        for row in data.to_pylist():
            t.add_row(*("[dim]null[/]" if v is None else escape(str(v)) for v in row.values()))
        out.print(t)


# -------------------------------------------------------------------------------- maintenance
@app.command()
def vacuum(ctx: typer.Context, uri: Uri,
           retention_hours: Annotated[float | None, typer.Option(
               "--retention-hours", min=0,
               help="Keep files removed within this many hours (default: table's, 168).")] = None,
           dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list the files.")] = False,
           force: Annotated[bool, typer.Option(
               "--force", help="Allow a retention shorter than the table's.")] = False,
           full: Annotated[bool, typer.Option(
               "--full", help="List all files to also remove orphans of failed writes.")] = False,
           json_: Json = False, storage_option: StorageOpt = None, debug: Debug = False) -> None:
    """Delete files no longer referenced by any version within the retention period."""
    with _guard(ctx, debug):
        table = _open(ctx, uri, storage_option)
        res = table.vacuum(retention_hours, dry_run=dry_run, enforce_retention=not force,
                           full=full, progress=not json_ and out.is_terminal)
        if json_:
            _print_json({"dryRun": res.dry_run, "mode": res.mode, "files": res.files,
                         "numFiles": res.num_files, "sizeInBytes": res.size_in_bytes,
                         "retentionHours": res.retention_ms / 3_600_000, "version": res.version})
            return
        verb = "Would delete" if dry_run else "Deleted"
        for f in res.files:
            out.print(escape(f))
        out.print(f"[bold]{verb} {res.num_files} file(s)[/] ({_human(res.size_in_bytes)}), "
                  f"{res.mode} mode, retention {res.retention_ms / 3_600_000:g} h"
                  + (f"; committed version {res.version}" if res.version is not None else ""))


def _metrics_table(title: str, metrics: dict[str, Any]) -> RichTable:
    rows = []
    for k, v in metrics.items():
        rows.append((k, _compact(v) if isinstance(v, dict) else
                     json.dumps(v) if isinstance(v, list) else v))
    return _kv_table(title, rows)


@app.command()
def optimize(ctx: typer.Context, uri: Uri,
             where: Annotated[str | None, typer.Option(
                 "--where", help="Partition predicate selecting what to optimize.")] = None,
             z_order: Annotated[str | None, typer.Option(
                 "--z-order", help="Comma-separated columns to Z-order by.")] = None,
             target_size: Annotated[str | None, typer.Option(
                 "--target-size", help="Bytes per file (or 128mb, 1gb).")] = None,
             json_: Json = False, storage_option: StorageOpt = None, debug: Debug = False) -> None:
    """Compact small files into target-size files (optionally Z-ordered)."""
    with _guard(ctx, debug):
        size = None
        if target_size is not None:
            from lakehouse.io.parquet import _parse_size

            size = _parse_size("--target-size", target_size)
        zcols = [c.strip() for c in z_order.split(",") if c.strip()] if z_order else None
        table = _open(ctx, uri, storage_option)
        m = table.optimize(where, size, zcols, progress=not json_ and out.is_terminal)
        if json_:
            _print_json(m.to_dict())
            return
        out.print(_metrics_table("Optimize", m.to_dict()))


@app.command()
def restore(ctx: typer.Context, uri: Uri, version: VersionOpt = None,
            timestamp: TimestampOpt = None, json_: Json = False,
            storage_option: StorageOpt = None, debug: Debug = False) -> None:
    """Make the latest version hold what an older version (or time) held."""
    if (version is None) == (timestamp is None):
        raise typer.BadParameter("pass exactly one of --version or --timestamp")
    with _guard(ctx, debug):
        table = _open(ctx, uri, storage_option)
        ts: Any = int(timestamp) if timestamp is not None and timestamp.isdigit() else timestamp
        m = table.restore(version=version, timestamp=ts)
        if json_:
            _print_json(m.to_dict())
            return
        out.print(_metrics_table(f"Restored to version {m.restored_version}", m.to_dict()))


@app.command()
def checkpoint(ctx: typer.Context, uri: Uri, json_: Json = False,
               storage_option: StorageOpt = None, debug: Debug = False) -> None:
    """Write a checkpoint of the latest version."""
    with _guard(ctx, debug):
        info = _open(ctx, uri, storage_option).checkpoint()
        d = {"version": info.version, "path": info.path, "actions": info.size,
             "sizeInBytes": info.size_in_bytes, "numAddFiles": info.num_add_files,
             "numTombstones": info.num_tombstones, "v2": info.v2}
        if json_:
            _print_json(d)
            return
        out.print(f"Checkpoint of version {info.version} written to {escape(info.path)} "
                  f"({info.num_add_files} file(s), {_human(info.size_in_bytes)})")


@app.command("cleanup-log")
def cleanup_log(ctx: typer.Context, uri: Uri, json_: Json = False,
                storage_option: StorageOpt = None, debug: Debug = False) -> None:
    """Delete expired log files (older than delta.logRetentionDuration, before a checkpoint)."""
    with _guard(ctx, debug):
        deleted = _open(ctx, uri, storage_option).cleanup_log()
        if json_:
            _print_json({"deleted": deleted, "numDeleted": len(deleted)})
            return
        for p in deleted:
            out.print(escape(p))
        out.print(f"Deleted {len(deleted)} expired log file(s)")


# --------------------------------------------------------------------- properties, constraints
@properties_app.command("set")
def properties_set(ctx: typer.Context, uri: Uri,
                   pairs: Annotated[list[str], typer.Argument(metavar="KEY=VALUE...")],
                   storage_option: StorageOpt = None, debug: Debug = False) -> None:
    """Set table properties, e.g. delta.logRetentionDuration='interval 60 days'."""
    props = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {p!r}", param_hint="KEY=VALUE")
        props[key.strip()] = value
    with _guard(ctx, debug):
        t = _open(ctx, uri, storage_option).set_properties(props)
        out.print(f"Set {len(props)} propert{'y' if len(props) == 1 else 'ies'}; "
                  f"version {t.version}")


@properties_app.command("unset")
def properties_unset(ctx: typer.Context, uri: Uri,
                     keys: Annotated[list[str], typer.Argument(metavar="KEY...")],
                     storage_option: StorageOpt = None, debug: Debug = False) -> None:
    """Remove table properties."""
    with _guard(ctx, debug):
        t = _open(ctx, uri, storage_option).unset_properties(keys)
        out.print(f"Unset {len(keys)} propert{'y' if len(keys) == 1 else 'ies'}; "
                  f"version {t.version}")


@constraints_app.command("add")
def constraints_add(ctx: typer.Context, uri: Uri, name: str, expr: str,
                    storage_option: StorageOpt = None, debug: Debug = False) -> None:
    """Add CHECK constraint NAME with SQL EXPR (every existing row must satisfy it)."""
    with _guard(ctx, debug):
        t = _open(ctx, uri, storage_option).add_constraint(name, expr)
        out.print(f"Added constraint {escape(name)}; version {t.version}")


@constraints_app.command("drop")
def constraints_drop(ctx: typer.Context, uri: Uri, name: str,
                     storage_option: StorageOpt = None, debug: Debug = False) -> None:
    """Drop CHECK constraint NAME."""
    with _guard(ctx, debug):
        t = _open(ctx, uri, storage_option).drop_constraint(name)
        out.print(f"Dropped constraint {escape(name)}; version {t.version}")


def main() -> None:
    """Entry point of the ``lakehouse`` script."""
    app(prog_name="lakehouse")


if __name__ == "__main__":
    main()
