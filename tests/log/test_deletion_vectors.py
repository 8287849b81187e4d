"""Tests for lakehouse.log.deletion_vectors: formats, real tables, and interop with delta-rs/DuckDB."""

from __future__ import annotations

import json
import struct
import uuid
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lakehouse.errors import (
    CorruptLogError,
    InvalidArgumentError,
    ProtocolError,
    UnsupportedFeatureError,
)
from lakehouse.io.storage import Storage
from lakehouse.log.deletion_vectors import (
    PORTABLE_MAGIC,
    DeletionVectorDescriptor,
    decode_bitmap,
    encode_bitmap,
    inline_deletion_vector,
    read_deletion_vector,
    read_deletion_vectors,
    write_deletion_vector,
    write_deletion_vectors,
    z85_decode,
    z85_encode,
)

TABLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "delta-tables"
needs_tables = pytest.mark.skipif(
    not TABLES.is_dir(), reason="shared Delta test tables not present"
)


class CountingStorage:
    """Wraps a Storage and records every ranged read."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.root = inner.root
        self.reads: list[tuple[str, int, int]] = []

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        self.reads.append((path, offset, length))
        return self.inner.read_range(path, offset, length)

    def write_bytes(self, path: str, data: bytes) -> None:
        self.inner.write_bytes(path, data)


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return Storage.for_uri(str(tmp_path))


# ------------------------------------------------------------------------------------------ Z85
def test_z85_spec_vector() -> None:
    # The test vector of the ZeroMQ Z85 specification (rfc.zeromq.org/spec/32).
    raw = bytes([0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B])
    assert z85_encode(raw) == "HelloWorld"
    assert z85_decode("HelloWorld") == raw


def test_z85_pads_unaligned_input_with_zeros() -> None:
    text = z85_encode(b"\x01\x02\x03\x04\x05")
    assert len(text) == 10
    assert z85_decode(text) == b"\x01\x02\x03\x04\x05\x00\x00\x00"


@pytest.mark.parametrize("bad", ["Hell", "Hello World", 'Hell"', "Hello_orld", "Hellö"])
def test_z85_rejects_invalid_text(bad: str) -> None:
    with pytest.raises(ValueError):
        z85_decode(bad)


def test_z85_accepts_the_rust_z85_crate_padded_tail() -> None:
    # Rust engines' inline DVs end in a block of k '#' then the last 4 - k bytes as a number.
    assert z85_decode("00000##093") == b"\x00\x00\x00\x00\x03\x00"
    assert z85_decode("#0ri3") == b"\x03\x00\x00"  # 0x030000 == 27 * 85**2 + 18 * 85 + 3
    for bad in ["#####", "####0", "##%%%"]:
        with pytest.raises(ValueError):
            z85_decode(bad)


@given(st.binary(max_size=64).map(lambda b: b + b"\x00" * (-len(b) % 4)))
def test_z85_round_trip(data: bytes) -> None:
    assert z85_decode(z85_encode(data)) == data


# ----------------------------------------------------------------------------------- descriptor
def test_protocol_example_relative_path_with_prefix() -> None:
    dv = DeletionVectorDescriptor("u", "ab^-aqEH.-t@S}K{vb[*k^", 4, 40, 6)
    assert (
        dv.absolute_path("s3://mytable/")
        == "s3://mytable/ab/deletion_vector_d2c639aa-8816-431a-aaf6-d3fe2512ff61.bin"
    )
    assert dv.unique_id == "uab^-aqEH.-t@S}K{vb[*k^@4"


def test_absolute_path_without_prefix_and_for_p_and_i() -> None:
    u = DeletionVectorDescriptor("u", "vBn[lx{q8@P<9BNH/isA", 1, 36, 2)
    assert (
        u.absolute_path("file:///t")
        == "file:///t/deletion_vector_61d16c75-6994-46b7-a15b-8b538852e50e.bin"
    )
    p = DeletionVectorDescriptor("p", "s3://mytable/deletion_vector_x.bin", 4, 40, 6)
    assert p.absolute_path("s3://other") == "s3://mytable/deletion_vector_x.bin"
    i = inline_deletion_vector([1])
    assert i.absolute_path("s3://mytable") is None
    assert i.unique_id == "i" + i.path_or_inline_dv  # no "@offset" without an offset


def test_from_dict_to_dict_round_trip() -> None:
    on_disk = {
        "storageType": "u",
        "pathOrInlineDv": "vBn[lx{q8@P<9BNH/isA",
        "offset": 1,
        "sizeInBytes": 36,
        "cardinality": 2,
    }
    dv = DeletionVectorDescriptor.from_dict(on_disk)
    assert dv == DeletionVectorDescriptor("u", "vBn[lx{q8@P<9BNH/isA", 1, 36, 2)
    assert dv.to_dict() == on_disk
    inline = {
        "storageType": "i",
        "pathOrInlineDv": "wi5b=000010000siXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L",
        "sizeInBytes": 40,
        "cardinality": 6,
    }
    assert DeletionVectorDescriptor.from_dict(inline).to_dict() == inline  # offset omitted
    assert DeletionVectorDescriptor.from_dict({**inline, "offset": None}).offset is None


@pytest.mark.parametrize(
    ("d", "error"),
    [
        (
            {"storageType": "x", "pathOrInlineDv": "a", "sizeInBytes": 1, "cardinality": 1},
            ProtocolError,
        ),
        (
            {
                "storageType": "u",
                "pathOrInlineDv": "short",
                "offset": 1,
                "sizeInBytes": 1,
                "cardinality": 1,
            },
            ProtocolError,
        ),
        (
            {
                "storageType": "i",
                "pathOrInlineDv": "00000",
                "offset": 3,
                "sizeInBytes": 1,
                "cardinality": 1,
            },
            ProtocolError,
        ),
        (
            {
                "storageType": "u",
                "pathOrInlineDv": "vBn[lx{q8@P<9BNH/isA",
                "offset": 1,
                "cardinality": 1,
            },
            CorruptLogError,
        ),
        (
            {
                "storageType": "u",
                "pathOrInlineDv": "vBn[lx{q8@P<9BNH/isA",
                "offset": 1,
                "sizeInBytes": "x",
                "cardinality": 1,
            },
            CorruptLogError,
        ),
    ],
)
def test_from_dict_rejects_bad_descriptors(d: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        DeletionVectorDescriptor.from_dict(d)


# ------------------------------------------------------------------------------ bitmap encoding
def test_protocol_inline_example_legacy_big_endian_native_format() -> None:
    # PROTOCOL.md "JSON Example 3 — Inline": rows 3, 4, 7, 11, 18, 29.
    dv = DeletionVectorDescriptor(
        "i", "wi5b=000010000siXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L", None, 40, 6
    )
    assert read_deletion_vector(None, dv).tolist() == [3, 4, 7, 11, 18, 29]  # type: ignore[arg-type]


def test_inline_encoding_matches_portable_format_written_by_other_engines() -> None:
    dv = inline_deletion_vector(np.array([29, 3, 4, 7, 11, 18, 3]))
    # The same six rows as written by Delta Kernel (portable format, 44 bytes).
    assert dv.path_or_inline_dv == "^Bg9^0rr910000000000iXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L"
    assert (dv.size_in_bytes, dv.cardinality, dv.offset) == (44, 6, None)


def test_encode_layout_magic_and_bucket_count() -> None:
    data = encode_bitmap([5, (1 << 32) + 1, (3 << 32) + 7])
    assert struct.unpack_from("<I", data, 0)[0] == PORTABLE_MAGIC
    assert struct.unpack_from("<Q", data, 4)[0] == 3  # three 32-bit buckets (keys 0, 1, 3)
    assert struct.unpack_from("<I", data, 12)[0] == 0


@pytest.mark.parametrize(
    "rows",
    [
        np.array([], dtype=np.uint64),
        np.arange(0, 200_000, dtype=np.int64),  # run containers
        np.arange(0, 1_000_000, 7, dtype=np.uint32),
        np.array(
            [0, 65535, 65536, (1 << 32) - 1, 1 << 32, (1 << 40) + 3, (1 << 63) - 1], dtype=np.uint64
        ),
    ],
)
def test_encode_decode_round_trip(rows: np.ndarray) -> None:
    out = decode_bitmap(encode_bitmap(rows))
    assert out.dtype == np.uint64
    np.testing.assert_array_equal(out, np.unique(rows.astype(np.uint64)))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.integers(min_value=0, max_value=(1 << 63) - 1) | st.integers(0, 300_000), max_size=300
    )
)
def test_encode_decode_property(values: list[int]) -> None:
    rows = np.array(values, dtype=np.uint64)
    np.testing.assert_array_equal(decode_bitmap(encode_bitmap(rows)), np.unique(rows))


@pytest.mark.parametrize(
    "rows",
    [
        np.array([1, -1]),
        np.array([1 << 63], dtype=np.uint64),
        np.array([1.0, 2.0]),
        np.zeros((2, 2), np.int64),
        ["a"],
    ],
)
def test_encode_rejects_bad_rows(rows: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        encode_bitmap(rows)


def test_decode_native_little_endian_format() -> None:
    # Legacy native layout: magic, bitmap count, then per key (= index) a size and a 32-bit Roaring.
    from pyroaring import BitMap

    b0, b1 = BitMap([1, 2]).serialize(), BitMap([9]).serialize()
    data = (
        struct.pack("<Ii", 1681511376, 2)
        + struct.pack("<i", len(b0))
        + b0
        + struct.pack("<i", len(b1))
        + b1
    )
    assert decode_bitmap(data).tolist() == [1, 2, (1 << 32) + 9]


@pytest.mark.parametrize(
    "data",
    [
        b"\x01\x02",
        struct.pack("<I", 12345) + b"\x00" * 8,
        struct.pack("<I", PORTABLE_MAGIC) + b"garbage!",
    ],
)
def test_decode_rejects_corrupt_data(data: bytes) -> None:
    with pytest.raises(CorruptLogError):
        decode_bitmap(data)


def test_decoded_array_is_read_only() -> None:
    out = decode_bitmap(encode_bitmap([1, 2]))
    with pytest.raises(ValueError):
        out[0] = 7


# ------------------------------------------------------------------------------- files on disk
def test_write_file_layout(storage: Storage, tmp_path: Path) -> None:
    rows = np.array([0, 3, 9, 70_000], dtype=np.uint64)
    dv = write_deletion_vector(storage, rows)
    assert (dv.storage_type, dv.offset, dv.cardinality) == ("u", 1, 4)
    assert len(dv.path_or_inline_dv) == 20
    path = Path(dv.absolute_path(str(tmp_path)) or "")
    assert path.parent == tmp_path and path.name.startswith("deletion_vector_")
    uuid.UUID(path.name[len("deletion_vector_") : -len(".bin")])
    raw = path.read_bytes()
    data = encode_bitmap(rows)
    assert raw == b"\x01" + struct.pack(">I", len(data)) + data + struct.pack(
        ">I", zlib.crc32(data)
    )
    assert dv.size_in_bytes == len(data)
    np.testing.assert_array_equal(read_deletion_vector(storage, dv), rows)


def test_write_with_prefix_directory(storage: Storage, tmp_path: Path) -> None:
    dv = write_deletion_vector(storage, [5, 6], prefix="q7")
    assert dv.path_or_inline_dv.startswith("q7") and len(dv.path_or_inline_dv) == 22
    path = Path(dv.absolute_path(str(tmp_path)) or "")
    assert path.parent == tmp_path / "q7" and path.is_file()
    assert read_deletion_vector(storage, dv).tolist() == [5, 6]
    with pytest.raises(InvalidArgumentError):
        write_deletion_vector(storage, [1], prefix="../x")


def test_several_dvs_in_one_file_are_read_with_one_request(storage: Storage) -> None:
    sets = [
        np.arange(0, 10, 2),
        np.array([1 << 33]),
        np.arange(100, 90_000, 3),
        np.array([], np.int64),
    ]
    dvs = write_deletion_vectors(storage, sets)
    assert len({dv.path_or_inline_dv for dv in dvs}) == 1
    offsets = [dv.offset or 0 for dv in dvs]
    assert offsets[0] == 1
    assert all(
        off + 8 + dv.size_in_bytes == nxt
        for off, dv, nxt in zip(offsets, dvs, offsets[1:], strict=False)
    )
    counting = CountingStorage(storage)
    inline = inline_deletion_vector([2, 4])
    wanted = [dvs[2], inline, dvs[0], dvs[2], dvs[1], dvs[3]]
    out = read_deletion_vectors(counting, wanted)
    assert len(counting.reads) == 1 and counting.reads[0][1] == 0
    expected = [sets[2], [2, 4], sets[0], sets[2], sets[1], []]
    for got, exp in zip(out, expected, strict=True):
        np.testing.assert_array_equal(got, np.asarray(exp, dtype=np.uint64))


def test_read_only_later_dv_in_file_skips_the_start(storage: Storage) -> None:
    dvs = write_deletion_vectors(storage, [np.arange(0, 200_000, 2), [7]])
    assert dvs[1].offset is not None and dvs[1].offset > 4096
    counting = CountingStorage(storage)
    assert read_deletion_vector(counting, dvs[1]).tolist() == [7]
    assert counting.reads == [(dvs[1]._storage_path(), dvs[1].offset, 8 + dvs[1].size_in_bytes)]


def test_far_apart_dvs_of_one_file_are_read_separately(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lakehouse.log.deletion_vectors as mod

    dvs = write_deletion_vectors(storage, [[1], np.arange(0, 50_000, 3), [2], [3]])
    monkeypatch.setattr(mod, "_COALESCE_GAP", 64)
    counting = CountingStorage(storage)
    out = read_deletion_vectors(counting, [dvs[3], dvs[0], dvs[2]])
    assert [o.tolist() for o in out] == [[3], [1], [2]]
    # dvs[0] near the start (with the version byte); dvs[2] and dvs[3] adjacent, far from it.
    assert [(off, n) for _, off, n in counting.reads] == [
        (0, 1 + 8 + dvs[0].size_in_bytes),
        (dvs[2].offset, 16 + dvs[2].size_in_bytes + dvs[3].size_in_bytes),
    ]


def test_files_in_several_files_read_concurrently(storage: Storage) -> None:
    dvs = [write_deletion_vector(storage, [i, i + 100]) for i in range(12)]
    out = read_deletion_vectors(storage, dvs)
    assert [o.tolist() for o in out] == [[i, i + 100] for i in range(12)]


def _corrupt(path: Path, pos: int, value: bytes) -> None:
    raw = bytearray(path.read_bytes())
    raw[pos : pos + len(value)] = value
    path.write_bytes(bytes(raw))


def test_corruptions_are_detected(storage: Storage, tmp_path: Path) -> None:
    dv = write_deletion_vector(storage, [1, 2, 3])
    path = Path(dv.absolute_path(str(tmp_path)) or "")
    good = path.read_bytes()

    _corrupt(path, 20, b"\xff")  # inside the bitmap: CRC fails
    with pytest.raises(CorruptLogError, match="CRC"):
        read_deletion_vector(storage, dv)
    path.write_bytes(good)

    with pytest.raises(CorruptLogError, match="sizeInBytes"):
        read_deletion_vector(
            storage, DeletionVectorDescriptor("u", dv.path_or_inline_dv, 1, dv.size_in_bytes - 2, 3)
        )
    with pytest.raises(CorruptLogError, match="cardinality"):
        read_deletion_vector(
            storage, DeletionVectorDescriptor("u", dv.path_or_inline_dv, 1, dv.size_in_bytes, 4)
        )

    path.write_bytes(good[:-3])
    with pytest.raises(CorruptLogError, match="truncated"):
        read_deletion_vector(storage, dv)

    path.write_bytes(b"\x02" + good[1:])
    with pytest.raises(UnsupportedFeatureError):
        read_deletion_vector(storage, dv)

    path.unlink()
    with pytest.raises(CorruptLogError, match="does not exist"):
        read_deletion_vector(storage, dv)


def test_inline_with_wrong_cardinality_or_size(storage: Storage) -> None:
    dv = inline_deletion_vector([1, 2, 3])
    with pytest.raises(CorruptLogError):
        read_deletion_vector(
            storage, DeletionVectorDescriptor("i", dv.path_or_inline_dv, None, dv.size_in_bytes, 2)
        )
    with pytest.raises(CorruptLogError):
        read_deletion_vector(
            storage,
            DeletionVectorDescriptor("i", dv.path_or_inline_dv, None, dv.size_in_bytes + 9, 3),
        )


def test_absolute_p_descriptor_is_url_decoded_for_storage(tmp_path: Path) -> None:
    sub = tmp_path / "dir with space"
    sub.mkdir()
    written = write_deletion_vector(Storage.for_uri(str(sub)), [4, 8])
    uri = Path(written.absolute_path(str(sub)) or "").as_uri()  # percent-encodes the space
    assert "%20" in uri
    p = DeletionVectorDescriptor("p", uri, 1, written.size_in_bytes, 2)
    assert read_deletion_vector(Storage.for_uri(str(tmp_path)), p).tolist() == [4, 8]


# --------------------------------------------------------------------------------- real tables
def _commits(table: Path) -> list[list[dict[str, Any]]]:
    """Actions of every commit, by version (these fixtures keep every JSON commit from 0)."""
    files = sorted(
        f
        for f in (table / "_delta_log").glob("*.json")
        if f.name[:20].isdigit() and f.name[20:] == ".json"
    )
    assert [int(f.name[:20]) for f in files] == list(range(len(files)))
    return [
        [json.loads(line) for line in f.read_text().splitlines() if line.strip()] for f in files
    ]


def _commit_actions(table: Path) -> list[dict[str, Any]]:
    return [a for commit in _commits(table) for a in commit]


def _snapshots(table: Path) -> list[list[dict[str, Any]]]:
    """Active ``add`` actions at each version, replayed by (path, DV unique id) as the protocol says."""
    active: dict[tuple[str, str], dict[str, Any]] = {}
    out = []
    for commit in _commits(table):
        for a in commit:
            for kind in ("add", "remove"):
                if kind in a:
                    dv = a[kind].get("deletionVector")
                    key = (
                        a[kind]["path"],
                        DeletionVectorDescriptor.from_dict(dv).unique_id if dv else "",
                    )
                    if kind == "add":
                        active[key] = a[kind]
                    else:
                        active.pop(key, None)
        out.append(list(active.values()))
    return out


def _query(table: Path, sql: str, version: int | None = None) -> pa.Table:
    from deltalake import DeltaTable, QueryBuilder

    return (
        QueryBuilder()
        .register("t", DeltaTable(str(table), version=version))
        .execute(sql)
        .read_all()
    )


DV_TABLES = [
    "delta-kernel-java/basic-dv-no-checkpoint",
    "delta-kernel-java/basic-dv-with-checkpoint",
    "delta-rs/table-with-dv-small",
    "delta-rs/cdf-table-with-cdc-and-dvs",
    "delta-rs/table_with_deletion_logs",
    "kernel-rs/cdf-table-with-dv",  # inline DVs, one with the Rust z85 crate's padded tail
    "kernel-rs/with-short-dv",
]


@needs_tables
@pytest.mark.parametrize("name", DV_TABLES)
def test_every_dv_in_real_log_decodes_to_its_cardinality(name: str) -> None:
    table = TABLES / name
    storage = Storage.for_uri(str(table))
    dvs = [
        DeletionVectorDescriptor.from_dict(a[kind]["deletionVector"])
        for a in _commit_actions(table)
        for kind in ("add", "remove")
        if kind in a and a[kind].get("deletionVector")
    ]
    assert dvs
    for dv, rows in zip(dvs, read_deletion_vectors(storage, dvs), strict=True):
        assert len(rows) == dv.cardinality
        assert np.all(np.diff(rows.astype(np.int64)) > 0)
        np.testing.assert_array_equal(read_deletion_vector(storage, dv), rows)  # one-by-one agrees


@needs_tables
@pytest.mark.parametrize("name", DV_TABLES)
def test_real_table_rows_minus_dvs_match_deltalake_at_every_version_with_dvs(name: str) -> None:
    table = TABLES / name
    storage = Storage.for_uri(str(table))
    checked = 0
    for version, active in enumerate(_snapshots(table)):
        dvs = [
            DeletionVectorDescriptor.from_dict(a["deletionVector"])
            for a in active
            if a.get("deletionVector")
        ]
        if not dvs:
            continue
        expected = _query(table, "select * from t", version)
        column = expected.column_names[0]
        deleted = iter(read_deletion_vectors(storage, dvs))
        kept_values: list[Any] = []
        for add in active:
            data = pq.read_table(table / unquote(add["path"]), columns=[column])
            keep = np.ones(data.num_rows, dtype=bool)
            if add.get("deletionVector"):
                rows = next(deleted)
                assert rows.size == 0 or int(rows[-1]) < data.num_rows
                keep[rows] = False
            kept_values += data.column(0).filter(pa.array(keep)).to_pylist()
        assert len(kept_values) == expected.num_rows, f"version {version}"
        assert sorted(kept_values) == sorted(expected.column(column).to_pylist()), (
            f"version {version}"
        )
        checked += 1
    assert checked, "the table should have a version with active deletion vectors"


@needs_tables
def test_spark_table_with_missing_dv_file_is_an_error() -> None:
    # Spark's fixture names its DV file with a test-only prefix, so the protocol path is absent.
    table = TABLES / "delta-spark/table-with-dv-small"
    (dv,) = [
        DeletionVectorDescriptor.from_dict(a["add"]["deletionVector"])
        for a in _commit_actions(table)
        if "add" in a and a["add"].get("deletionVector")
    ]
    with pytest.raises(CorruptLogError, match="does not exist"):
        read_deletion_vector(Storage.for_uri(str(table)), dv)


# ------------------------------------------------------------------- tables we write, read by others
def _write_table(root: Path, num_rows: int, dvs: list[DeletionVectorDescriptor | None]) -> None:
    """A table with one data file per DV (ids 0..num_rows-1 each), committed in version 0."""
    (root / "_delta_log").mkdir(parents=True)
    schema = {
        "type": "struct",
        "fields": [{"name": "id", "type": "long", "nullable": True, "metadata": {}}],
    }
    actions: list[dict[str, Any]] = [
        {
            "protocol": {
                "minReaderVersion": 3,
                "minWriterVersion": 7,
                "readerFeatures": ["deletionVectors"],
                "writerFeatures": ["deletionVectors"],
            }
        },
        {
            "metaData": {
                "id": str(uuid.uuid4()),
                "format": {"provider": "parquet", "options": {}},
                "schemaString": json.dumps(schema),
                "partitionColumns": [],
                "configuration": {"delta.enableDeletionVectors": "true"},
                "createdTime": 0,
            }
        },
    ]
    for n, dv in enumerate(dvs):
        name = f"part-{n:05d}-{uuid.uuid4()}.parquet"
        pq.write_table(
            pa.table({"id": pa.array(np.arange(num_rows) + n * 1_000_000, pa.int64())}), root / name
        )
        add: dict[str, Any] = {
            "path": name,
            "partitionValues": {},
            "size": (root / name).stat().st_size,
            "modificationTime": 0,
            "dataChange": True,
            "stats": json.dumps({"numRecords": num_rows, "tightBounds": False}),
        }
        if dv is not None:
            add["deletionVector"] = dv.to_dict()
        actions.append({"add": add})
    (root / "_delta_log" / "00000000000000000000.json").write_text(
        "\n".join(json.dumps(a) for a in actions) + "\n"
    )


def _duckdb_ids(root: Path) -> list[int] | None:
    try:
        import duckdb
        import duckdb_extension_delta

        ext = next(
            Path(duckdb_extension_delta.__file__).parent.glob("extensions/*/delta.duckdb_extension")
        )
        con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
        con.execute(f"LOAD '{ext}'")
    except Exception:  # the DuckDB oracle is optional
        return None
    return [
        r[0] for r in con.execute(f"select id from delta_scan('{root}') order by id").fetchall()
    ]


@pytest.mark.parametrize("how", ["file", "file-with-prefix", "inline"])
def test_deltalake_and_duckdb_read_a_table_with_our_dv(tmp_path: Path, how: str) -> None:
    root = tmp_path / "t"
    root.mkdir()
    storage = Storage.for_uri(str(root))
    deleted = [1, 3, 5, 9]
    if how == "inline":
        dv = inline_deletion_vector(deleted)
    else:
        dv = write_deletion_vector(
            storage, np.array(deleted), prefix="ab" if how == "file-with-prefix" else ""
        )
    np.testing.assert_array_equal(read_deletion_vector(storage, dv), deleted)
    _write_table(root, 10, [dv])
    want = [0, 2, 4, 6, 7, 8]
    got = _query(root, "select id from t order by id").column("id").to_pylist()
    assert got == want
    duck = _duckdb_ids(root)
    assert duck is None or duck == want


def test_deltalake_reads_large_and_shared_dv_files(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    storage = Storage.for_uri(str(root))
    n = 150_000
    big = np.concatenate([np.arange(1_000, 120_000), np.arange(120_001, n, 97)])  # runs + sparse
    small = np.array([0, n - 1])
    dvs = write_deletion_vectors(storage, [big, small])
    _write_table(root, n, [dvs[0], dvs[1], None])
    counts = _query(root, "select count(*) as c from t").column("c").to_pylist()
    assert counts == [3 * n - len(np.unique(big)) - 2]
    present = set(_query(root, "select id from t where id < 1000000").column("id").to_pylist())
    assert present == set(range(n)) - set(big.tolist())
    duck = _duckdb_ids(root)
    if duck is not None:
        assert len(duck) == counts[0]
