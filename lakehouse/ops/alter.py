"""``t.alter``: change a table's schema, properties and constraints without rewriting data.

Each call is one metadata-only :class:`Transaction` with Delta's operation name (``RENAME COLUMN``,
``DROP COLUMNS``, ``ADD COLUMNS``, ``SET TBLPROPERTIES``, ``UNSET TBLPROPERTIES``,
``ADD CONSTRAINT``, ``DROP CONSTRAINT``), so ``history()`` reads as it would on Databricks. The
protocol is upgraded when the new metadata needs a feature (``protocol_for``), never downgraded.

Renaming and dropping columns only touch the schema, which is safe only when data files name
columns by physical name or id (column mapping); without it they are refused and the error says how
to enable it (``set_properties({"delta.columnMapping.mode": "name"})``, which upgrades the table
in place: existing files keep their column names as physical names).

Example:
    >>> import lakehouse, pyarrow as pa
    >>> t = lakehouse.write("memory://doc-alter", pa.table({"a": [1], "c": [2]}),
    ...                     properties={"delta.columnMapping.mode": "name"})
    >>> t = t.alter.rename_column("a", "b")
    >>> t = t.alter.drop_column("c")
    >>> t.to_arrow().to_pydict()
    {'b': [1]}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.errors import ConstraintViolationError, InvalidArgumentError
from lakehouse.log.actions import Metadata
from lakehouse.log.features import protocol_for
from lakehouse.log.schema import (
    COLUMN_MAPPING_MODE_KEY,
    StructField,
    StructType,
    assign_column_mapping,
    max_column_id,
)
from lakehouse.log.snapshot import Snapshot
from lakehouse.txn.transaction import Transaction

if TYPE_CHECKING:
    from lakehouse.table import Table

__all__ = ["TableAlterer"]

CONSTRAINT_PREFIX = "delta.constraints."
MAX_COLUMN_ID_KEY = "delta.columnMapping.maxColumnId"
STATS_COLUMNS_KEY = "delta.dataSkippingStatsColumns"
_BOOLEAN_PROPERTIES = frozenset({
    "delta.appendOnly", "delta.enableChangeDataFeed", "delta.enableDeletionVectors",
    "delta.enableInCommitTimestamps", "delta.checkpoint.writeStatsAsJson",
    "delta.checkpoint.writeStatsAsStruct", "delta.enableRowTracking",
})
_PROTOCOL_PROPERTIES = ("delta.minReaderVersion", "delta.minWriterVersion")

FieldEdit = Callable[[StructField], "StructField | None"]


def _enable_hint() -> str:
    return (f'enable column mapping first: t.alter.set_properties({{"{COLUMN_MAPPING_MODE_KEY}": '
            '"name"}) (upgrades the protocol to reader 2 / writer 5; existing files stay valid)')


class TableAlterer:
    """Schema/property changes on one :class:`~lakehouse.table.Table` (``t.alter``).

    Every method commits one version against the latest snapshot, moves the table handle to it
    and returns the table. A time-travelled handle (opened with ``version=``) cannot alter.
    """

    def __init__(self, table: Table) -> None:
        self._table = table

    # ----------------------------------------------------------------------------- columns
    def rename_column(self, column: str, new_name: str) -> Table:
        """Rename ``column`` (``"a"`` or a nested struct path ``"s.x"``) to ``new_name``.

        Needs column mapping (``delta.columnMapping.mode`` = ``name``); data files are untouched.
        Refused when CHECK constraints or generated columns reference the column.
        """
        snap = self._snapshot()
        self._require_mapping(snap, "rename")
        if not new_name or not isinstance(new_name, str):
            raise InvalidArgumentError("new_name must be a non-empty string")
        path = _resolve(snap.schema, column)
        parent = _struct_at(snap.schema, path[:-1])
        clash = parent.get(new_name)
        if clash is not None and clash.name != path[-1]:
            raise InvalidArgumentError(
                f"cannot rename {_dotted(path)!r} to {new_name!r}: a column {clash.name!r} already "
                "exists there (names are case-insensitive)"
            )
        self._refuse_if_referenced(snap, path, "rename")
        schema = _edit(snap.schema, path,
                       lambda f: StructField(new_name, f.type, f.nullable, f.metadata))
        parts = tuple(new_name if len(path) == 1 and p == path[0] else p
                      for p in snap.metadata.partition_columns)
        config = _rename_in_stats_columns(snap.configuration, _dotted(path),
                                          _dotted([*path[:-1], new_name]))
        new_path = _dotted([*path[:-1], new_name])
        return self._commit(snap, "RENAME COLUMN",
                            {"oldColumnPath": _dotted(path), "newColumnPath": new_path},
                            snap.metadata.with_(schema_string=schema.to_json(),
                                                partition_columns=parts, configuration=config))

    def drop_column(self, column: str) -> Table:
        """Drop one column (or nested struct field ``"s.x"``); see :meth:`drop_columns`."""
        return self.drop_columns([column])

    def drop_columns(self, columns: Sequence[str]) -> Table:
        """Drop columns without rewriting data (their values stay in the files, unreadable).

        Needs column mapping. Partition columns, columns referenced by CHECK constraints or
        generated columns, and the last data column cannot be dropped.
        """
        if isinstance(columns, str):
            columns = [columns]
        if not columns:
            raise InvalidArgumentError("drop_columns needs at least one column name")
        snap = self._snapshot()
        self._require_mapping(snap, "drop")
        schema = snap.schema
        config = dict(snap.configuration)
        dropped = []
        for column in columns:
            path = _resolve(schema, column)
            if len(path) == 1 and path[0] in snap.partition_columns:
                raise InvalidArgumentError(
                    f"cannot drop partition column {path[0]!r}; partition columns can only change "
                    "by rewriting the table (overwrite with schema_mode='overwrite')"
                )
            self._refuse_if_referenced(snap, path, "drop")
            parent = _struct_at(schema, path[:-1])
            if len(parent.fields) == 1:
                where = f"struct {_dotted(path[:-1])!r}; drop the struct" if len(path) > 1 \
                    else "the table"
                raise InvalidArgumentError(
                    f"cannot drop {_dotted(path)!r}: it is the only column of {where}"
                )
            schema = _edit(schema, path, lambda f: None)
            config = _rename_in_stats_columns(config, _dotted(path), None)
            dropped.append(_dotted(path))
        if all(f.name in snap.partition_columns for f in schema.fields):
            raise InvalidArgumentError(
                f"cannot drop {dropped}: a table needs at least one non-partition column"
            )
        return self._commit(snap, "DROP COLUMNS", {"columns": dropped},
                            snap.metadata.with_(schema_string=schema.to_json(),
                                                configuration=config))

    def add_columns(self, fields: pa.Schema | pa.Field | Iterable[pa.Field]) -> Table:
        """Add nullable columns (no data is rewritten: existing rows read them as NULL).

        A field named ``"s.x"`` whose prefix is an existing struct column is added inside that
        struct. NOT NULL and generated columns cannot be added to an existing table.
        """
        if isinstance(fields, pa.Field):
            fields = [fields]
        new = list(fields)
        if not new:
            raise InvalidArgumentError("add_columns needs at least one field")
        snap = self._snapshot()
        schema = snap.schema
        added: list[dict[str, Any]] = []
        for af in new:
            if not isinstance(af, pa.Field):
                raise InvalidArgumentError(f"add_columns expects pyarrow fields, got {af!r}")
            if not af.nullable:
                raise InvalidArgumentError(
                    f"cannot add NOT NULL column {af.name!r} to an existing table (its existing "
                    "rows would be NULL); add it nullable"
                )
            if af.metadata and b"delta.generationExpression" in af.metadata:
                raise InvalidArgumentError(
                    f"cannot add generated column {af.name!r} to an existing table; generated "
                    "columns can only be declared when the table is created"
                )
            from lakehouse.ops.enforce import schema_from_arrow

            parent_path, leaf = _split_new(schema, af.name)
            sf = schema_from_arrow(pa.schema([af.with_name(leaf)])).fields[0]
            parent = _struct_at(schema, parent_path)
            if parent.get(leaf) is not None:
                raise InvalidArgumentError(
                    f"cannot add column {af.name!r}: a column named "
                    f"{_dotted([*parent_path, parent.field(leaf).name])!r} already exists"
                )
            if parent_path:
                schema = _edit(schema, parent_path, lambda f, sf=sf: StructField(
                    f.name, StructType((*f.type.fields, sf)), f.nullable, f.metadata))
            else:
                schema = StructType((*schema.fields, sf))
            added.append({"column": {"name": _dotted([*parent_path, leaf]),
                                     "type": sf.type.json_value(), "nullable": True}})
        config = dict(snap.configuration)
        if snap.column_mapping_mode != "none":
            start = int(config.get(MAX_COLUMN_ID_KEY, max_column_id(snap.schema)))
            schema, max_id = assign_column_mapping(schema, start)
            config[MAX_COLUMN_ID_KEY] = str(max_id)
        return self._commit(snap, "ADD COLUMNS", {"columns": added},
                            snap.metadata.with_(schema_string=schema.to_json(),
                                                configuration=config))

    # -------------------------------------------------------------------------- properties
    def set_properties(self, properties: Mapping[str, Any]) -> Table:
        """Set table properties (``delta.*`` and user keys); upgrades the protocol if needed.

        ``delta.columnMapping.mode = "name"`` on a table without mapping enables it in place.
        CHECK constraints go through :meth:`add_constraint`, not here.
        """
        if not properties:
            raise InvalidArgumentError("set_properties needs at least one property")
        snap = self._snapshot()
        props = {str(k): _property_value(k, v) for k, v in properties.items()}
        for key in props:
            _refuse_reserved(key, "set")
        schema = snap.schema
        config = dict(snap.configuration)
        old_mode = snap.column_mapping_mode
        new_mode = props.get(COLUMN_MAPPING_MODE_KEY, old_mode).strip().lower()
        if new_mode not in ("none", "name", "id"):
            raise InvalidArgumentError(
                f"{COLUMN_MAPPING_MODE_KEY} must be none, name or id, got {new_mode!r}"
            )
        if new_mode != old_mode:
            if old_mode != "none":
                raise InvalidArgumentError(
                    f"cannot change {COLUMN_MAPPING_MODE_KEY} from {old_mode!r} to {new_mode!r}: "
                    "files name columns by physical name/id, so only rewriting the table "
                    "(overwrite with schema_mode='overwrite' into a new table) can do that"
                )
            if new_mode == "id":
                raise InvalidArgumentError(
                    f"{COLUMN_MAPPING_MODE_KEY}='id' can only be set when a table is created; "
                    "use 'name' on an existing table"
                )
            schema, max_id = assign_column_mapping(schema, 0, use_logical_names=True)
            config[MAX_COLUMN_ID_KEY] = str(max_id)
        config.update(props)
        return self._commit(snap, "SET TBLPROPERTIES", {"properties": props},
                            snap.metadata.with_(schema_string=schema.to_json(),
                                                configuration=config))

    def unset_properties(self, keys: Iterable[str], *, if_exists: bool = False) -> Table:
        """Remove table properties; missing keys are an error unless ``if_exists``."""
        keys = [keys] if isinstance(keys, str) else list(keys)
        if not keys:
            raise InvalidArgumentError("unset_properties needs at least one key")
        snap = self._snapshot()
        for key in keys:
            _refuse_reserved(key, "unset")
            if key == COLUMN_MAPPING_MODE_KEY:
                raise InvalidArgumentError(f"{COLUMN_MAPPING_MODE_KEY} cannot be unset")
        missing = [k for k in keys if k not in snap.configuration]
        if missing and not if_exists:
            raise InvalidArgumentError(
                f"table has no propert{'y' if len(missing) == 1 else 'ies'} {missing}; pass "
                "if_exists=True to ignore missing keys"
            )
        config = {k: v for k, v in snap.configuration.items() if k not in keys}
        return self._commit(snap, "UNSET TBLPROPERTIES",
                            {"properties": keys, "ifExists": if_exists},
                            snap.metadata.with_(configuration=config))

    # ------------------------------------------------------------------------- constraints
    def add_constraint(self, name: str, expression: str) -> Table:
        """Add CHECK constraint ``name`` (stored as ``delta.constraints.<name>``).

        Every existing row is checked first; a row passes only if ``expression`` is TRUE
        (NULL fails, as in Delta). Raises ConstraintViolationError naming how many rows fail.
        """
        if not name or not isinstance(name, str) or not name.strip():
            raise InvalidArgumentError("constraint name must be a non-empty string")
        if not isinstance(expression, str) or not expression.strip():
            raise InvalidArgumentError("constraint expression must be a non-empty SQL string")
        snap = self._snapshot()
        key = CONSTRAINT_PREFIX + name.lower()
        if key in snap.configuration:
            raise InvalidArgumentError(
                f"constraint {name!r} already exists ({snap.configuration[key]}); drop it first "
                "with t.alter.drop_constraint"
            )
        self._validate_existing_rows(snap, name, expression)
        config = {**snap.configuration, key: expression}
        return self._commit(snap, "ADD CONSTRAINT", {"name": name, "expr": expression},
                            snap.metadata.with_(configuration=config), read_whole_table=True)

    def drop_constraint(self, name: str, *, if_exists: bool = False) -> Table:
        """Drop CHECK constraint ``name``; a missing one is an error unless ``if_exists``."""
        snap = self._snapshot()
        key = CONSTRAINT_PREFIX + name.lower()
        expr = snap.configuration.get(key)
        if expr is None:
            if if_exists:
                return self._table
            existing = sorted(k[len(CONSTRAINT_PREFIX):] for k in snap.configuration
                              if k.startswith(CONSTRAINT_PREFIX))
            raise InvalidArgumentError(
                f"table has no constraint {name!r}; its constraints are {existing}"
            )
        config = {k: v for k, v in snap.configuration.items() if k != key}
        return self._commit(snap, "DROP CONSTRAINT", {"name": name, "expr": expr},
                            snap.metadata.with_(configuration=config))

    # --------------------------------------------------------------------------- internals
    def _snapshot(self) -> Snapshot:
        return self._table._latest_for_write()

    @staticmethod
    def _require_mapping(snap: Snapshot, what: str) -> None:
        if snap.column_mapping_mode == "none":
            raise InvalidArgumentError(
                f"cannot {what} columns of {snap.storage.root}: without column mapping data files "
                f"name columns by their logical names, so a {what} would need a rewrite. "
                + _enable_hint()
            )

    @staticmethod
    def _refuse_if_referenced(snap: Snapshot, path: list[str], what: str) -> None:
        from lakehouse.expressions import referenced_columns

        top = path[0].lower()
        users: list[str] = []
        for k, expr in snap.configuration.items():
            if k.startswith(CONSTRAINT_PREFIX) and _mentions(referenced_columns(expr), top):
                users.append(f"CHECK constraint {k[len(CONSTRAINT_PREFIX):]} ({expr})")
        for f in snap.schema.fields:
            gen = f.metadata.get("delta.generationExpression")
            if gen and _mentions(referenced_columns(str(gen)), top):
                users.append(f"generated column {f.name} ({gen})")
        if users:
            raise InvalidArgumentError(
                f"cannot {what} column {_dotted(path)!r}: it is used by {'; '.join(users)}. "
                "Drop those first (t.alter.drop_constraint for constraints)"
            )

    def _validate_existing_rows(self, snap: Snapshot, name: str, expression: str) -> None:
        from lakehouse.expressions import referenced_columns
        from lakehouse.scan import Scan

        try:
            refs = referenced_columns(expression)
        except Exception as e:
            raise InvalidArgumentError(f"cannot parse constraint {expression!r}: {e}") from e
        names = snap.arrow_schema.names
        by_lower = {n.lower(): n for n in names}
        unknown = sorted(r for r in refs if r.lower() not in by_lower)
        if unknown:
            raise InvalidArgumentError(
                f"constraint {name!r} references unknown column(s) {unknown}; columns are {names}"
            )
        cols = [by_lower[r.lower()] for r in sorted(refs)]
        engine = self._table.engine
        empty = pa.schema([snap.arrow_schema.field(c) for c in cols]).empty_table()
        engine.filter_mask(empty, expression)  # invalid or non-boolean SQL fails here
        bad = 0
        example: dict[str, Any] | None = None
        for table in Scan(snap).iter_tables(cols):
            ok = engine.filter_mask(table, expression)
            n_bad = len(ok) - (pc.sum(pc.cast(ok, pa.int64())).as_py() or 0)
            if n_bad and example is None:
                example = table.filter(pc.invert(ok)).slice(0, 1).to_pylist()[0]
            bad += n_bad
        if bad:
            raise ConstraintViolationError(
                f"cannot add constraint {name!r} ({expression}): {bad} existing row(s) do not "
                f"satisfy it (NULL counts as not satisfied), e.g. "
                f"{json.dumps(example, default=str)}; fix or delete those rows first"
            )

    def _commit(self, snap: Snapshot, operation: str, params: Mapping[str, Any],
                metadata: Metadata, *, read_whole_table: bool = False) -> Table:
        txn = Transaction(snap.storage, snap, operation, params)
        txn.set_metadata(metadata)
        protocol = protocol_for(metadata.schema_string, metadata.configuration, snap.protocol)
        if protocol != snap.protocol:
            txn.set_protocol(protocol)
        if read_whole_table:
            txn.read_whole_table()
        result = txn.commit()
        self._table._advance(Snapshot.load(snap.storage, version=result.version))
        return self._table


# ------------------------------------------------------------------------------ schema edits
def _dotted(path: Sequence[str]) -> str:
    return ".".join(path)


def _mentions(refs: set[str], top: str) -> bool:
    return any(r.lower() == top or r.lower().startswith(top + ".") for r in refs)


def _resolve(schema: StructType, column: str) -> list[str]:
    """Exact field names along the path to ``column`` (a top-level name, else a dotted path)."""
    if not isinstance(column, str) or not column:
        raise InvalidArgumentError(f"column must be a non-empty string, got {column!r}")
    top = schema.get(column)
    if top is not None:
        return [top.name]
    path: list[str] = []
    struct: Any = schema
    for part in column.split("."):
        f = struct.get(part) if isinstance(struct, StructType) else None
        if f is None:
            raise InvalidArgumentError(
                f"no column {column!r} in the table; columns are {schema.field_names}"
            )
        path.append(f.name)
        struct = f.type
    return path


def _struct_at(schema: StructType, path: Sequence[str]) -> StructType:
    struct = schema
    for name in path:
        t = struct.field(name).type
        if not isinstance(t, StructType):
            raise InvalidArgumentError(f"{_dotted(path)!r} is not a struct column")
        struct = t
    return struct


def _edit(struct: StructType, path: Sequence[str], fn: FieldEdit) -> StructType:
    """``struct`` with the field at ``path`` replaced by ``fn(field)`` (removed if None)."""
    out: list[StructField] = []
    for f in struct.fields:
        if f.name != path[0]:
            out.append(f)
        elif len(path) == 1:
            new = fn(f)
            if new is not None:
                out.append(new)
        else:
            assert isinstance(f.type, StructType)
            out.append(StructField(f.name, _edit(f.type, path[1:], fn), f.nullable, f.metadata))
    return StructType(tuple(out))


def _split_new(schema: StructType, name: str) -> tuple[list[str], str]:
    """Parent struct path and leaf name for a column to add (``"s.x"`` adds ``x`` into ``s``)."""
    if "." in name and schema.get(name) is None:
        head, leaf = name.rsplit(".", 1)
        try:
            path = _resolve(schema, head)
        except InvalidArgumentError:
            return [], name
        if isinstance(_struct_at_or_none(schema, path), StructType):
            return path, leaf
    return [], name


def _struct_at_or_none(schema: StructType, path: Sequence[str]) -> StructType | None:
    try:
        return _struct_at(schema, path)
    except InvalidArgumentError:
        return None


def _rename_in_stats_columns(config: Mapping[str, str], old: str,
                             new: str | None) -> dict[str, str]:
    """``delta.dataSkippingStatsColumns`` follows a renamed (or loses a dropped) column."""
    out = dict(config)
    value = out.get(STATS_COLUMNS_KEY)
    if not value:
        return out
    from lakehouse.io.parquet import split_stats_columns

    cols = []
    for c in split_stats_columns(value):
        bare = c.strip("`")
        if bare.lower() == old.lower():
            if new is not None:
                cols.append(f"`{new}`" if bare != c else new)
        else:
            cols.append(c)
    if cols:
        out[STATS_COLUMNS_KEY] = ",".join(cols)
    else:
        out.pop(STATS_COLUMNS_KEY)
    return out


def _property_value(key: Any, value: Any) -> str:
    if isinstance(value, bool):
        value = "true" if value else "false"
    text = str(value)
    if str(key) in _BOOLEAN_PROPERTIES and text.lower() not in ("true", "false"):
        raise InvalidArgumentError(f"property {key} must be true or false, got {value!r}")
    return text.lower() if str(key) in _BOOLEAN_PROPERTIES else text


def _refuse_reserved(key: str, verb: str) -> None:
    if key.startswith(CONSTRAINT_PREFIX):
        raise InvalidArgumentError(
            f"cannot {verb} {key} as a property: use t.alter.add_constraint / drop_constraint, "
            "which check existing rows"
        )
    if key == MAX_COLUMN_ID_KEY:
        raise InvalidArgumentError(f"{MAX_COLUMN_ID_KEY} is maintained by lakehouse; do not {verb} it")
    if key in _PROTOCOL_PROPERTIES:
        raise InvalidArgumentError(
            f"{key} is not a table property: the protocol follows the features the table uses; "
            "set the feature's property instead (e.g. delta.enableDeletionVectors=true)"
        )

