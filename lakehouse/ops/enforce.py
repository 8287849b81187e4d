"""Schema enforcement and evolution, and per-batch constraint checks for every write.

``reconcile_schema`` decides, once per write, what the table schema becomes and refuses data that
does not fit (naming every offending column); ``BatchConformer`` then makes each incoming batch
exactly the table's Arrow schema (order, types, missing nullable columns as nulls, generated
columns computed) and enforces NOT NULL and CHECK constraints before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.errors import ConstraintViolationError, SchemaMismatchError
from lakehouse.log.schema import (
    ArrayType,
    DecimalType,
    MapType,
    PrimitiveType,
    StructField,
    StructType,
    assign_column_mapping,
    column_mapping_mode,
    conform_to_schema,
    from_arrow,
    max_column_id,
    strip_field_metadata,
    to_arrow,
)

if TYPE_CHECKING:
    from lakehouse.log.actions import Metadata
    from lakehouse.log.snapshot import Snapshot

_INT_RANK = {"byte": 1, "short": 2, "integer": 3, "long": 4}


def _type_name(t: Any) -> str:
    if isinstance(t, PrimitiveType | DecimalType):
        return t.name
    if isinstance(t, ArrayType):
        return f"array<{_type_name(t.element_type)}>"
    if isinstance(t, MapType):
        return f"map<{_type_name(t.key_type)},{_type_name(t.value_type)}>"
    return "struct<" + ",".join(f"{f.name}:{_type_name(f.type)}" for f in t.fields) + ">"


def _merge_type(table_t: Any, data_t: Any, path: str, merge: bool, errors: list[str]) -> Any:
    """The table type after writing data of ``data_t`` (errors appended for incompatibility)."""
    if table_t == data_t:
        return table_t
    if isinstance(table_t, StructType) and isinstance(data_t, StructType):
        return _merge_struct(table_t, data_t, f"{path}.", merge, errors)
    if isinstance(table_t, ArrayType) and isinstance(data_t, ArrayType):
        el = _merge_type(table_t.element_type, data_t.element_type, f"{path}.element", merge, errors)
        return ArrayType(el, table_t.contains_null)
    if isinstance(table_t, MapType) and isinstance(data_t, MapType):
        k = _merge_type(table_t.key_type, data_t.key_type, f"{path}.key", merge, errors)
        v = _merge_type(table_t.value_type, data_t.value_type, f"{path}.value", merge, errors)
        return MapType(k, v, table_t.value_contains_null)
    if isinstance(table_t, PrimitiveType) and isinstance(data_t, PrimitiveType):
        a, b = table_t.name, data_t.name
        if a in _INT_RANK and b in _INT_RANK and _INT_RANK[b] <= _INT_RANK[a]:
            return table_t  # safe widening cast
        if a == "double" and (b == "float" or (b in _INT_RANK and _INT_RANK[b] <= 3)):
            return table_t
    if isinstance(table_t, DecimalType) and isinstance(data_t, DecimalType):
        if data_t.scale <= table_t.scale and \
                data_t.precision - data_t.scale <= table_t.precision - table_t.scale:
            return table_t
    if isinstance(table_t, DecimalType) and isinstance(data_t, PrimitiveType) \
            and data_t.name in _INT_RANK:
        digits = {"byte": 3, "short": 5, "integer": 10, "long": 20}[data_t.name]
        if table_t.precision - table_t.scale >= digits:
            return table_t
    errors.append(f"column {path!r}: table type is {_type_name(table_t)}, data type is "
                  f"{_type_name(data_t)} (no safe cast)")
    return table_t


def _merge_struct(table_s: StructType, data_s: StructType, prefix: str, merge: bool,
                  errors: list[str]) -> StructType:
    data_by_lower = {f.name.lower(): f for f in data_s.fields}
    table_lower = {f.name.lower() for f in table_s.fields}
    fields = []
    for tf in table_s.fields:
        df = data_by_lower.get(tf.name.lower())
        if df is None:
            fields.append(tf)
            continue
        if df.name != tf.name:
            errors.append(f"column {prefix + df.name!r} differs only in case from table column "
                          f"{prefix + tf.name!r}; rename it to match")
        t = _merge_type(tf.type, df.type, prefix + tf.name, merge, errors)
        fields.append(StructField(tf.name, t, tf.nullable, tf.metadata))
    for df in data_s.fields:
        if df.name.lower() not in table_lower:
            if merge:
                fields.append(StructField(df.name, df.type, True))
            else:
                errors.append(f"column {prefix + df.name!r} ({_type_name(df.type)}) is not in the "
                              "table schema; pass schema_mode=\"merge\" to add it")
    return StructType(tuple(fields))


#: Field metadata a user may put on Arrow fields of a new table's schema (kept in the Delta schema).
USER_FIELD_METADATA = ("delta.generationExpression", "delta.invariants", "comment")


def schema_from_arrow(schema: pa.Schema) -> StructType:
    """The Delta schema of ``schema``, keeping the user field metadata Delta defines (generated
    column expressions, legacy invariants, comments) on top-level and nested struct fields."""
    return _keep_metadata(from_arrow(schema), list(schema))


def _keep_metadata(struct: StructType, fields: list[pa.Field]) -> StructType:
    out = []
    for sf, af in zip(struct.fields, fields, strict=True):
        md = {k.decode(): v.decode() for k, v in (af.metadata or {}).items()
              if k.decode(errors="replace") in USER_FIELD_METADATA}
        t = sf.type
        if isinstance(t, StructType) and pa.types.is_struct(af.type):
            t = _keep_metadata(t, [af.type.field(i) for i in range(af.type.num_fields)])
        out.append(StructField(sf.name, t, sf.nullable, {**sf.metadata, **md}))
    return StructType(tuple(out))


def reconcile_schema(table: StructType | None, data: pa.Schema, schema_mode: str | None) -> StructType:
    """The schema the table has after this write, or SchemaMismatchError listing every problem."""
    if table is None or schema_mode == "overwrite":
        return schema_from_arrow(data)
    data_schema = from_arrow(data)
    errors: list[str] = []
    merged = _merge_struct(table, data_schema, "", schema_mode == "merge", errors)
    # NOT NULL columns must be present in the data (generated columns are computed instead).
    present = {f.name.lower() for f in data_schema.fields}
    for f in table.fields:
        if not f.nullable and f.name.lower() not in present \
                and "delta.generationExpression" not in f.metadata:
            errors.append(f"column {f.name!r} is NOT NULL in the table but missing from the data")
    if errors:
        raise SchemaMismatchError(
            "data does not match the table schema:\n  - " + "\n  - ".join(errors)
        )
    return merged


@dataclass(frozen=True, eq=False)
class BatchConformer:
    """Turns input batches into the table's Arrow schema and enforces constraints."""

    schema: StructType
    constraints: Mapping[str, str]          # name -> SQL CHECK expression
    generated: Mapping[str, str]            # column -> SQL generation expression
    engine: Any
    where: str | None = None                # replaceWhere: every written row must match

    @classmethod
    def for_table(cls, schema: StructType, configuration: Mapping[str, str], engine: Any,
                  where: str | None = None) -> BatchConformer:
        constraints = {k[len("delta.constraints."):]: v for k, v in configuration.items()
                       if k.startswith("delta.constraints.")}
        constraints.update(_invariants(schema, ""))
        generated = {}
        for f in schema.fields:
            expr = f.metadata.get("delta.generationExpression")
            if expr:
                generated[f.name] = expr
        return cls(schema, constraints, generated, engine, where)

    @property
    def target(self) -> pa.Schema:
        return to_arrow(self.schema)

    def conform(self, batch: pa.RecordBatch) -> pa.Table:
        target = strip_field_metadata(self.target)
        table = pa.Table.from_batches([batch])
        by_lower = {f.name.lower(): f.name for f in target}
        keep = [n for n in table.column_names if n.lower() in by_lower]
        table = table.select(keep).rename_columns([by_lower[n.lower()] for n in keep])
        missing_generated = [c for c in self.generated if c not in table.column_names]
        nullable_target = pa.schema([f.with_nullable(True) for f in target])
        try:
            table = conform_to_schema(table, nullable_target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise SchemaMismatchError(f"data cannot be cast to the table schema: {e}") from e
        if self.generated:
            table = self._generate(table, missing_generated)
        self._check_not_null(table, target)
        self._check_constraints(table)
        return table.cast(target) if table.schema != target else table

    def conform_all(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            if b.num_rows == 0:
                continue
            yield from self.conform(b).to_batches()

    def _generate(self, table: pa.Table, missing: list[str]) -> pa.Table:
        values = self.engine.project(table, dict(self.generated))
        for name in self.generated:
            col = values.column(name)
            i = table.schema.get_field_index(name)
            col = col.cast(table.schema.field(name).type)
            if name in missing:
                table = table.set_column(i, name, col)
            else:
                given = table.column(name)
                bad = pc.sum(pc.cast(pc.fill_null(pc.not_equal(given, col), True), pa.int64())).as_py()
                both_null = pc.sum(pc.cast(pc.and_(pc.is_null(given), pc.is_null(col)), pa.int64())).as_py()
                if (bad or 0) - (both_null or 0) > 0:
                    raise ConstraintViolationError(
                        f"generated column {name!r}: {bad - both_null} row(s) differ from its "
                        f"generation expression {self.generated[name]!r}; omit the column to "
                        "have it computed"
                    )
        return table

    def _check_not_null(self, table: pa.Table, target: pa.Schema) -> None:
        for f in target:
            if not f.nullable and table.column(f.name).null_count:
                raise ConstraintViolationError(
                    f"NOT NULL constraint violated: column {f.name!r} has "
                    f"{table.column(f.name).null_count} null value(s); nothing was written"
                )

    def _check_constraints(self, table: pa.Table) -> None:
        # As in Delta, a row satisfies a CHECK only if the expression is TRUE: NULL violates it
        # (write ``x IS NULL OR ...`` to allow nulls). filter_mask maps NULL to False.
        for name, expr in self.constraints.items():
            ok = self.engine.filter_mask(table, expr)
            bad = len(ok) - pc.sum(pc.cast(ok, pa.int64())).as_py() if len(ok) else 0
            if bad:
                first = table.filter(pc.invert(ok)).slice(0, 1).to_pylist()
                raise ConstraintViolationError(
                    f"CHECK constraint {name} ({expr}) violated by {bad} row(s), e.g. "
                    f"{json.dumps(first[0], default=str) if first else ''}; nothing was written"
                )
        if self.where:
            ok = self.engine.filter_mask(table, self.where)
            bad = len(ok) - pc.sum(pc.cast(ok, pa.int64())).as_py() if len(ok) else 0
            if bad:
                raise ConstraintViolationError(
                    f"{bad} row(s) of the data do not match where={self.where!r}; an overwrite "
                    "with where= may only write rows matching it"
                )


def _invariants(schema: StructType, prefix: str) -> dict[str, str]:
    """Legacy column invariants (``delta.invariants`` field metadata) as named CHECK expressions."""
    out: dict[str, str] = {}
    for f in schema.fields:
        raw = f.metadata.get("delta.invariants")
        if raw:
            try:
                obj = json.loads(raw) if isinstance(raw, str) else raw
                expr = obj["expression"]["expression"]
            except (ValueError, KeyError, TypeError) as e:
                raise SchemaMismatchError(
                    f"column {prefix + f.name!r} has an unreadable delta.invariants value {raw!r}"
                ) from e
            out[f"invariant({prefix + f.name})"] = str(expr)
        if isinstance(f.type, StructType):
            out.update(_invariants(f.type, f"{prefix}{f.name}."))
    return out


def evolved_metadata(snapshot: Snapshot, new_schema: StructType) -> Metadata | None:
    """The table's metadata with its schema changed to ``new_schema``, or None if unchanged.

    New fields get column-mapping ids and physical names (and ``maxColumnId`` advances) when the
    table uses column mapping. Callers commit it with ``protocol_for(...)`` for any upgrade.
    """
    if new_schema == snapshot.schema:
        return None
    config = dict(snapshot.configuration)
    if column_mapping_mode(config) != "none":
        start = int(config.get("delta.columnMapping.maxColumnId", max_column_id(snapshot.schema)))
        new_schema, max_id = assign_column_mapping(new_schema, start)
        config["delta.columnMapping.maxColumnId"] = str(max_id)
    return snapshot.metadata.with_(schema_string=new_schema.to_json(), configuration=config)
