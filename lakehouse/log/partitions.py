"""Partition values: the log's string form <-> typed Arrow, and Hive-style directory names.

Why this module exists: the Delta log stores every partition value as a string (protocol appendix
"Partition Value Serialization"), and writers lay files out in ``col=value/`` directories whose
escaping must match what Spark/Hive produce so other engines find the same layout. Both
directions work on whole Arrow columns with ``pyarrow.compute``, never value by value in Python.

Null handling (protocol): "An empty string for any type translates to a null partition value".
So ``""`` reads back as null for every type, string included - which is also why Spark and
delta-rs write an empty-string partition as a null value, and why we serialise ``""`` as null.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.errors import CorruptLogError, InvalidArgumentError
from lakehouse.log.schema import DecimalType, DeltaType, PrimitiveType, to_arrow

HIVE_DEFAULT_PARTITION = "__HIVE_DEFAULT_PARTITION__"

# Characters Hive's FileUtils.escapePathName (and Spark's copy of it) percent-encode:
# ASCII controls 0x01-0x1F, 0x7F and " # % ' * / : = ? \ { [ ] ^ (as %XX, upper-case hex).
_ESCAPED = [*range(0x01, 0x20), 0x7F, *(ord(c) for c in "\"#%'*/:=?\\{[]^")]
_ESCAPE_TABLE = {c: f"%{c:02X}" for c in _ESCAPED}

# ISO-8601 zone designator at the end of a timestamp string: Z, +hh, +hh:mm, +hhmm.
_ZONE_SUFFIX = r"(Z|z|[+-]\d{2}(:?\d{2})?)$"


def _check_partition_type(dtype: DeltaType) -> pa.DataType:
    if not isinstance(dtype, PrimitiveType | DecimalType):
        raise InvalidArgumentError(
            f"partition columns must have a primitive type, not {dtype!r}; partition by a "
            "primitive column instead"
        )
    return to_arrow(dtype)


def _nulls_for_empty(arr: pa.Array) -> pa.Array:
    empty = pc.equal(arr, "")
    if not pc.any(empty).as_py():
        return arr
    return pc.if_else(empty, pa.scalar(None, pa.string()), arr)


def _parse_timestamps(arr: pa.Array, target: pa.DataType) -> pa.Array:
    # Drop digits beyond microseconds (nanosecond writers); the types hold microseconds.
    arr = pc.replace_substring_regex(arr, r"(\.\d{6})\d+", r"\1")
    has_zone = pc.fill_null(pc.match_substring_regex(arr, _ZONE_SUFFIX), False)
    naive = pa.timestamp("us")
    utc = pa.timestamp("us", tz="UTC")
    # Zone-less strings: wall-clock values. For `timestamp` the protocol says they are in the
    # writer's zone, which the log does not record; like delta-rs and Kernel we take UTC.
    plain = pc.if_else(has_zone, pa.scalar(None, pa.string()), arr).cast(naive)
    if pc.any(has_zone).as_py():
        zoned = pc.if_else(has_zone, arr, pa.scalar(None, pa.string())).cast(utc)
        # tz-aware -> naive keeps the UTC instant's wall clock (timestamp_ntz written with Z).
        plain = pc.if_else(has_zone, zoned.cast(naive), plain)
    return plain.cast(target)


def parse_partition_values(values: Sequence[str | None] | pa.Array, dtype: DeltaType) -> pa.Array:
    """Typed Arrow array for serialised partition values of Delta type ``dtype``.

    ``None`` and ``""`` become null for every type. Timestamps accept ``YYYY-MM-DD HH:MM:SS[.f]``
    and ISO-8601 with ``T`` and ``Z``/offset; ``timestamp`` values come back in UTC,
    ``timestamp_ntz`` naive. Binary values are the UTF-8 bytes of the string.
    Raises CorruptLogError when a value does not parse as ``dtype``.
    """
    target = _check_partition_type(dtype)
    strings = values if isinstance(values, pa.Array) else pa.array(values, pa.string())
    if not pa.types.is_string(strings.type):
        strings = strings.cast(pa.string())
    strings = _nulls_for_empty(strings)
    try:
        if pa.types.is_string(target):
            return strings
        if pa.types.is_binary(target):
            return strings.cast(pa.binary())  # zero-copy: the string's UTF-8 bytes
        if pa.types.is_timestamp(target):
            return _parse_timestamps(strings, target)
        if pa.types.is_boolean(target):
            lowered = pc.utf8_lower(strings)
            bad = pc.invert(pc.is_in(lowered, pa.array(["true", "false"])))
            if pc.any(pc.and_kleene(bad, pc.is_valid(lowered))).as_py():
                raise pa.ArrowInvalid("boolean partition values must be 'true' or 'false'")
            return pc.equal(lowered, "true")
        if pa.types.is_floating(target):
            # Java writes NaN/Infinity/-Infinity; Arrow's parser accepts those spellings.
            return strings.cast(target)
        return strings.cast(target)  # integers, decimals, dates
    except pa.ArrowException as exc:
        raise CorruptLogError(
            f"partition values cannot be parsed as {_type_name(dtype)}: {exc}; the log's "
            "partitionValues do not match the table schema"
        ) from exc


def _type_name(dtype: DeltaType) -> str:
    return dtype.name if isinstance(dtype, PrimitiveType | DecimalType) else repr(dtype)


def serialize_partition_column(
    array: pa.Array | pa.ChunkedArray, dtype: DeltaType
) -> list[str | None]:
    """Protocol strings for a column of partition values (nulls and ``""`` -> None)."""
    target = _check_partition_type(dtype)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    try:
        if array.type != target:
            array = array.cast(target)
        if pa.types.is_timestamp(target):
            # tz-aware -> naive keeps UTC wall-clock; %S includes the microseconds for unit "us".
            out = pc.strftime(array.cast(pa.timestamp("us")), format="%Y-%m-%d %H:%M:%S")
        elif pa.types.is_floating(target):
            text = array.cast(pa.string())
            # Java/Spark spellings, which every Delta reader parses.
            out = pc.if_else(
                pc.is_nan(array),
                pa.scalar("NaN"),
                pc.if_else(
                    pc.is_inf(array),
                    pc.if_else(pc.greater(array, 0), pa.scalar("Infinity"), pa.scalar("-Infinity")),
                    text,
                ),
            )
        else:
            out = array.cast(pa.string())  # ints, decimals (plain), dates, booleans, binary
    except pa.ArrowException as exc:
        raise InvalidArgumentError(
            f"cannot write partition values as {_type_name(dtype)}: {exc}; binary partition "
            "values must be valid UTF-8, other values must fit the column type"
        ) from exc
    return _nulls_for_empty(out).to_pylist()


def serialize_partition_value(value: Any, dtype: DeltaType) -> str | None:
    """Protocol string for one Python value (None -> None; naive datetimes for ``timestamp``
    are taken as UTC). Timestamps are written as ``YYYY-MM-DD HH:MM:SS.ffffff`` (UTC)."""
    target = _check_partition_type(dtype)
    if value is None:
        return None
    try:
        array = pa.array([value], type=target)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"partition value {value!r} is not a valid {_type_name(dtype)}: {exc}"
        ) from exc
    return serialize_partition_column(array, dtype)[0]


def escape_partition_component(text: str) -> str:
    """Hive/Spark path escaping of one partition column name or value."""
    return text.translate(_ESCAPE_TABLE)


def partition_path(values: Sequence[tuple[str, str | None]]) -> str:
    """Hive-style relative directory, e.g. ``a=1/b=x%2Fy``, for (column, serialised value)
    pairs in partition-column order; null (or ``""``) values use ``__HIVE_DEFAULT_PARTITION__``.

    This is the directory name on storage; the ``add.path`` in the log is this path further
    URI-encoded (``%`` -> ``%25``), which is the log writer's job.
    """
    parts = []
    for name, value in values:
        escaped = HIVE_DEFAULT_PARTITION if not value else escape_partition_component(value)
        parts.append(f"{escape_partition_component(name)}={escaped}")
    return "/".join(parts)
