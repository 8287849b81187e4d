"""Log replay: fold a :class:`LogSegment` into the table state at its version.

Two independent passes, as the protocol separates them:

- *table-level state* (protocol, metadata, app transactions, domain metadata): the newest action of
  each kind wins, commits newest-first, then the checkpoint;
- *file actions*: a file is identified by ``(canonical path, deletion vector id)``; the newest action
  for an identity decides whether it is active (``add``) or a tombstone (``remove``).

File actions stay Arrow columns throughout. A checkpoint is already reconciled, so only identities
touched by commits after it need de-duplication; checkpoint rows are filtered with one vectorised
membership test.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakehouse.errors import CorruptLogError, ProtocolError
from lakehouse.log import actions as A
from lakehouse.log.actions import DomainMetadata, Metadata, Protocol, Txn, decode_commit
from lakehouse.log.paths import SIDECAR_DIR, LogKind, LogPath
from lakehouse.log.segment import LogSegment

if TYPE_CHECKING:
    from lakehouse.io.storage import Storage

STR_MAP = pa.map_(pa.string(), pa.string())
DV_TYPE = pa.struct([
    ("storageType", pa.string()),
    ("pathOrInlineDv", pa.string()),
    ("offset", pa.int32()),
    ("sizeInBytes", pa.int32()),
    ("cardinality", pa.int64()),
])
#: Columns of an active-files table (``Snapshot.files``): the ``add`` action's fields, camelCase as
#: on the wire, plus ``canonical_path`` (decoded, relative to the root when inside it).
ADD_SCHEMA = pa.schema([
    ("path", pa.string()),
    ("partitionValues", STR_MAP),
    ("size", pa.int64()),
    ("modificationTime", pa.int64()),
    ("dataChange", pa.bool_()),
    ("stats", pa.string()),
    ("tags", STR_MAP),
    ("deletionVector", DV_TYPE),
    ("baseRowId", pa.int64()),
    ("defaultRowCommitVersion", pa.int64()),
])
REMOVE_SCHEMA = pa.schema([
    ("path", pa.string()),
    ("deletionTimestamp", pa.int64()),
    ("dataChange", pa.bool_()),
    ("extendedFileMetadata", pa.bool_()),
    ("partitionValues", STR_MAP),
    ("size", pa.int64()),
    ("deletionVector", DV_TYPE),
    ("baseRowId", pa.int64()),
    ("defaultRowCommitVersion", pa.int64()),
])
_CHECKPOINT_COLUMNS = (A.ADD, A.REMOVE, A.METADATA, A.PROTOCOL, A.TXN, A.DOMAIN_METADATA, A.SIDECAR)


@dataclass(frozen=True, slots=True, eq=False)
class ReplayResult:
    """Table state at one version, as replayed from the log."""

    protocol: Protocol
    metadata: Metadata
    files: pa.Table        # ADD_SCHEMA + canonical_path
    tombstones: pa.Table   # REMOVE_SCHEMA + canonical_path
    app_versions: Mapping[str, Txn]
    domains: Mapping[str, DomainMetadata]
    latest_commit_info: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True, eq=False)
class BaseState:
    """An already reconciled state (a checkpoint, or an earlier snapshot) to replay on top of."""

    adds: pa.Table
    removes: pa.Table
    protocol: Protocol | None
    metadata: Metadata | None
    txns: Sequence[Txn]
    domains: Sequence[DomainMetadata]


def replay(storage: Storage, segment: LogSegment, base: BaseState | None = None) -> ReplayResult:
    """Replay ``segment`` into the table state at ``segment.version``.

    With ``base`` (the state at the version just before ``segment.commits``), the checkpoint is
    not read: only the commits are folded on top of it (incremental update of a snapshot).
    """
    commit_blobs = storage.read_many([c.path for c in segment.commits])
    commits = [decode_commit(b, c.path) for c, b in zip(segment.commits, commit_blobs, strict=True)]

    protocol: Protocol | None = None
    metadata: Metadata | None = None
    txns: dict[str, Txn] = {}
    domains: dict[str, DomainMetadata] = {}
    seen_domains: set[str] = set()
    add_rows: list[dict[str, Any]] = []
    remove_rows: list[dict[str, Any]] = []
    add_order: list[int] = []
    remove_order: list[int] = []
    order = 0
    # Newest commit first: the first action seen for a key wins.
    for actions in reversed(commits):
        for action in actions:
            order += 1
            if (body := action.get(A.ADD)) is not None:
                add_rows.append(body)
                add_order.append(order)
            elif (body := action.get(A.REMOVE)) is not None:
                remove_rows.append(body)
                remove_order.append(order)
            elif (body := action.get(A.METADATA)) is not None:
                metadata = metadata or Metadata.from_dict(body)
            elif (body := action.get(A.PROTOCOL)) is not None:
                protocol = protocol or Protocol.from_dict(body)
            elif (body := action.get(A.TXN)) is not None:
                t = Txn.from_dict(body)
                txns.setdefault(t.app_id, t)
            elif (body := action.get(A.DOMAIN_METADATA)) is not None:
                _fold_domain(DomainMetadata.from_dict(body), domains, seen_domains)

    latest_info = None
    if segment.commits and segment.commits[-1].version == segment.version:
        for action in commits[-1]:
            if A.COMMIT_INFO in action:
                latest_info = action[A.COMMIT_INFO]

    cp_adds = pa.Table.from_pylist([], schema=ADD_SCHEMA)
    cp_removes = pa.Table.from_pylist([], schema=REMOVE_SCHEMA)
    cp: _Checkpoint | BaseState | None = None
    if base is not None:
        cp = base
    elif segment.checkpoint:
        cp = _read_checkpoint(storage, segment.checkpoint)
    if cp is not None:
        cp_adds, cp_removes = cp.adds, cp.removes
        protocol = protocol or cp.protocol
        metadata = metadata or cp.metadata
        for t in cp.txns:
            txns.setdefault(t.app_id, t)
        for d in cp.domains:
            _fold_domain(d, domains, seen_domains)

    if protocol is None:
        raise ProtocolError(
            f"no protocol action found in the log of {storage.root} up to version {segment.version}"
        )
    if metadata is None:
        raise ProtocolError(
            f"no metaData action found in the log of {storage.root} up to version {segment.version}"
        )

    root = storage.root
    c_adds = _with_keys(_table(add_rows, ADD_SCHEMA), root)
    c_removes = _with_keys(_table(remove_rows, REMOVE_SCHEMA), root)
    cp_adds = _with_keys(cp_adds, root)
    cp_removes = _with_keys(cp_removes, root)

    # De-duplicate the commits' file actions: newest (lowest order) per identity wins.
    keys = pa.concat_arrays([_chunk(c_adds["_key"]), _chunk(c_removes["_key"])])
    orders = np.concatenate([np.asarray(add_order, np.int64), np.asarray(remove_order, np.int64)])
    n_adds = c_adds.num_rows
    win = _first_per_key(keys, orders)
    add_win = win[win < n_adds]
    rem_win = win[win >= n_adds] - n_adds
    active = c_adds.take(pa.array(add_win, pa.int64()))
    tomb = c_removes.take(pa.array(rem_win, pa.int64()))
    if len(keys) and cp_adds.num_rows:
        keep = pc.invert(pc.is_in(cp_adds["_key"], value_set=keys))
        cp_adds = cp_adds.filter(keep)
    if len(keys) and cp_removes.num_rows:
        cp_removes = cp_removes.filter(pc.invert(pc.is_in(cp_removes["_key"], value_set=keys)))
    files = pa.concat_tables([cp_adds, active]).drop_columns(["_key"])
    tombstones = pa.concat_tables([cp_removes, tomb]).drop_columns(["_key"])
    return ReplayResult(protocol, metadata, files, tombstones, txns, domains, latest_info)


def _fold_domain(d: DomainMetadata, domains: dict[str, DomainMetadata], seen: set[str]) -> None:
    if d.domain in seen:
        return
    seen.add(d.domain)
    if not d.removed:
        domains[d.domain] = d


def _table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    if not rows:
        return schema.empty_table()
    try:
        return pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as e:
        raise CorruptLogError(f"invalid file action in the log: {e}") from e


def _chunk(col: pa.ChunkedArray) -> pa.Array:
    return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)


def _first_per_key(keys: pa.Array, orders: np.ndarray) -> np.ndarray:
    """Indices (into ``keys``) of the lowest-order row of each distinct key."""
    if len(keys) == 0:
        return np.zeros(0, np.int64)
    idx = pc.sort_indices(
        pa.table({"k": keys, "o": orders}), sort_keys=[("k", "ascending"), ("o", "ascending")]
    )
    sorted_keys = keys.take(idx)
    first = np.ones(len(sorted_keys), bool)
    if len(sorted_keys) > 1:
        first[1:] = pc.not_equal(sorted_keys[1:], sorted_keys[:-1]).to_numpy(zero_copy_only=False)
    return np.sort(idx.to_numpy()[first])


def dv_unique_ids(dv: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The protocol's deletion vector unique id per row ("" when the file has no DV)."""
    if isinstance(dv, pa.ChunkedArray):
        dv = dv.combine_chunks()
    if len(dv) == 0:
        return pa.array([], pa.string())
    st = pc.fill_null(pc.struct_field(dv, "storageType"), "")
    p = pc.fill_null(pc.struct_field(dv, "pathOrInlineDv"), "")
    off = pc.struct_field(dv, "offset")
    off_s = pc.if_else(pc.is_valid(off), pc.binary_join_element_wise("@", pc.cast(off, pa.string()), ""), "")
    ids = pc.binary_join_element_wise(st, p, off_s, "")
    return pc.if_else(pc.is_valid(dv), ids, "")


def canonicalize_paths(paths: pa.Array | pa.ChunkedArray, root: str) -> pa.Array:
    """Decode URI-encoded paths and make absolute paths inside ``root`` relative to it.

    The protocol stores ``add.path``/``remove.path`` as URIs; two spellings of one file (encoded or
    not, ``file:`` prefixed, absolute) must compare equal for an add and a remove to cancel.
    """
    if isinstance(paths, pa.ChunkedArray):
        paths = paths.combine_chunks()
    needs = pc.or_(
        pc.match_substring(paths, "%"),
        pc.or_(pc.match_substring(paths, ":"), pc.starts_with(paths, "/")),
    )
    if not pc.any(needs).as_py():
        return paths
    root_fs = _strip_file_scheme(root)
    values = paths.to_pylist()
    mask = needs.to_pylist()
    for i, (v, m) in enumerate(zip(values, mask, strict=True)):
        if m and v is not None:
            values[i] = _canonical(v, root, root_fs)
    return pa.array(values, pa.string())


def _strip_file_scheme(p: str) -> str:
    if p.startswith("file:"):
        p = p[5:]
        if p.startswith("//"):
            p = p[2:]
        return "/" + p.lstrip("/")
    return p


def _canonical(path: str, root: str, root_fs: str) -> str:
    p = urllib.parse.unquote(path)
    if "://" not in p and not p.startswith(("/", "file:")):
        return p
    p = _strip_file_scheme(p)
    for prefix in (root_fs, root):
        if prefix and p.startswith(prefix.rstrip("/") + "/"):
            return p[len(prefix.rstrip("/")) + 1:]
    return p


def _with_keys(t: pa.Table, root: str) -> pa.Table:
    canon = canonicalize_paths(t["path"], root) if t.num_rows else pa.array([], pa.string())
    key = pc.binary_join_element_wise(canon, dv_unique_ids(t["deletionVector"]), "\x00") \
        if t.num_rows else pa.array([], pa.string())
    idx = t.schema.get_field_index("canonical_path")
    if idx >= 0:
        t = t.remove_column(idx)
    return t.append_column("canonical_path", canon).append_column("_key", key)


@dataclass(frozen=True, slots=True, eq=False)
class _Checkpoint:
    adds: pa.Table
    removes: pa.Table
    protocol: Protocol | None
    metadata: Metadata | None
    txns: list[Txn]
    domains: list[DomainMetadata]


def _read_checkpoint(storage: Storage, parts: Sequence[LogPath]) -> _Checkpoint:
    tables: list[pa.Table] = []
    json_actions: list[dict[str, Any]] = []
    for part in parts:
        if part.kind is LogKind.V2_CHECKPOINT and part.fmt == "json":
            json_actions.extend(decode_commit(storage.read_bytes(part.path), part.path))
        else:
            tables.append(_read_checkpoint_parquet(storage, part.path))
    # V2 checkpoints (and classic-named ones written in V2 style) point at sidecar files.
    sidecars = [a[A.SIDECAR]["path"] for a in json_actions if A.SIDECAR in a]
    for t in tables:
        if A.SIDECAR in t.column_names:
            col = t[A.SIDECAR]
            sc = col.filter(pc.is_valid(col))
            if len(sc):
                sidecars.extend(pc.struct_field(sc, "path").to_pylist())
    for sc_path in sidecars:
        rel = sc_path if "/" in sc_path else f"{SIDECAR_DIR}/{sc_path}"
        tables.append(_read_checkpoint_parquet(storage, urllib.parse.unquote(rel)))

    adds = [_struct_rows(t, A.ADD, ADD_SCHEMA) for t in tables]
    removes = [_struct_rows(t, A.REMOVE, REMOVE_SCHEMA) for t in tables]
    adds.append(_table([a[A.ADD] for a in json_actions if A.ADD in a], ADD_SCHEMA))
    removes.append(_table([a[A.REMOVE] for a in json_actions if A.REMOVE in a], REMOVE_SCHEMA))

    singles: dict[str, list[dict[str, Any]]] = {
        k: [a[k] for a in json_actions if k in a]
        for k in (A.METADATA, A.PROTOCOL, A.TXN, A.DOMAIN_METADATA)
    }
    for t in tables:
        for k in singles:
            if k in t.column_names:
                col = t[k]
                singles[k].extend(col.filter(pc.is_valid(col)).to_pylist())
    return _Checkpoint(
        adds=pa.concat_tables(adds),
        removes=pa.concat_tables(removes),
        protocol=Protocol.from_dict(singles[A.PROTOCOL][0]) if singles[A.PROTOCOL] else None,
        metadata=Metadata.from_dict(singles[A.METADATA][0]) if singles[A.METADATA] else None,
        txns=[Txn.from_dict(d) for d in singles[A.TXN]],
        domains=[DomainMetadata.from_dict(d) for d in singles[A.DOMAIN_METADATA]],
    )


def _read_checkpoint_parquet(storage: Storage, path: str) -> pa.Table:
    try:
        with storage.open_input(path) as f:
            pf = pq.ParquetFile(f)
            names = pf.schema_arrow.names
            cols = [c for c in _CHECKPOINT_COLUMNS if c in names]
            return pf.read(columns=cols)
    except FileNotFoundError as e:
        raise ProtocolError(f"checkpoint file {path} is listed but missing: {e}") from e
    except (pa.ArrowInvalid, OSError) as e:
        raise CorruptLogError(f"cannot read checkpoint file {path}: {e}") from e


def _struct_rows(t: pa.Table, column: str, schema: pa.Schema) -> pa.Table:
    """The non-null rows of struct column ``column`` flattened to ``schema`` (missing fields null)."""
    if column not in t.column_names:
        return schema.empty_table()
    col = t[column]
    col = col.filter(pc.is_valid(col))
    if len(col) == 0:
        return schema.empty_table()
    arr = col.combine_chunks()
    present = {arr.type.field(i).name for i in range(arr.type.num_fields)}
    out = []
    for f in schema:
        if f.name in present:
            child = pc.struct_field(arr, f.name)
            if child.type != f.type:
                child = _coerce(child, f.type)
            out.append(child)
        else:
            out.append(pa.nulls(len(arr), f.type))
    return pa.Table.from_arrays(out, schema=schema)


def _coerce(arr: pa.Array, typ: pa.DataType) -> pa.Array:
    try:
        return arr.cast(typ)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array(arr.to_pylist(), typ)
