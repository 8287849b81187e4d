"""Deletion vectors: the Delta protocol's per-file sets of soft-deleted row indexes.

A table with the ``deletionVectors`` feature may attach a *deletion vector* (DV) to an ``add`` or
``remove`` action instead of rewriting a Parquet file. This module is the one place that knows the
three storage forms of a DV and its byte formats, so readers get a sorted ``uint64`` NumPy array of
deleted row positions and writers get a ready descriptor for their ``add`` action:

* the descriptor (``storageType``/``pathOrInlineDv``/``offset``/``sizeInBytes``/``cardinality``),
  with the derived ``uniqueId`` (used by log replay) and the DV file's location;
* the ``RoaringBitmapArray`` serialization: a little-endian magic number followed by a 64-bit Roaring
  bitmap in the portable format of the RoaringFormatSpec (the bitmap work is done by ``pyroaring``);
* the DV file format: one version byte (``1``), then per DV a big-endian 4-byte size, the serialized
  bitmap, and a big-endian CRC-32 of that bitmap. ``offset`` points at the size field;
* Z85, the Base85 variant used for inline DVs and for the UUID in ``'u'`` (relative) paths.

Files written here are read by delta-rs/Delta Kernel/Spark; files they write are read here.
"""

from __future__ import annotations

import base64
import re
import struct
import uuid
import zlib
from array import array
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote

import numpy as np
from pyroaring import BitMap, BitMap64

from lakehouse.errors import (
    CorruptLogError,
    InvalidArgumentError,
    ProtocolError,
    UnsupportedFeatureError,
)

__all__ = [
    "DeletionVectorDescriptor",
    "decode_bitmap",
    "encode_bitmap",
    "inline_deletion_vector",
    "read_deletion_vector",
    "read_deletion_vectors",
    "write_deletion_vector",
    "write_deletion_vectors",
    "z85_decode",
    "z85_encode",
]

PORTABLE_MAGIC = 1681511377  # RoaringBitmapArray, 64-bit portable format (what everyone writes)
NATIVE_MAGIC = 1681511376  # RoaringBitmapArray, legacy "native" format (read only)
FILE_FORMAT_VERSION = 1
UUID_Z85_LENGTH = 20  # a 16-byte UUID is always 20 Z85 characters
MAX_ROW_INDEX = (1 << 63) - 1  # bucket keys must have their top bit clear (signed in Java)

_MAX_DV_SIZE = (1 << 31) - 1  # sizes are Java ints
_READ_FROM_START_BELOW = 4096  # also read (and check) the version byte when the first DV is near it
_COALESCE_GAP = 1 << 20  # DVs of one file closer than this are fetched in one ranged read
_MAX_READ_THREADS = 8
_PREFIX_RE = re.compile(r"[A-Za-z0-9]*")
_STORAGE_TYPES = ("u", "i", "p")

_Z85_ALPHABET = (
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
)
# Python's base64.b85* implements the same big-endian 4-byte/5-char scheme with the RFC 1924 alphabet.
_B85_ALPHABET = (
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~"
)
_Z85_TO_B85 = bytes.maketrans(_Z85_ALPHABET, _B85_ALPHABET)
_B85_TO_Z85 = bytes.maketrans(_B85_ALPHABET, _Z85_ALPHABET)


class _ByteStorage(Protocol):
    """The part of :class:`lakehouse.io.storage.Storage` this module uses."""

    def read_range(self, path: str, offset: int, length: int) -> bytes: ...

    def write_bytes(self, path: str, data: bytes) -> None: ...


# ------------------------------------------------------------------------------------------ Z85
def z85_encode(data: bytes) -> str:
    """Z85 text of ``data``; unaligned input is zero-padded to a multiple of 4 bytes (as Delta does).

    The padding is not recorded: decoders truncate to the known length (``sizeInBytes``).
    """
    return base64.b85encode(bytes(data), pad=True).translate(_B85_TO_Z85).decode("ascii")


def z85_decode(text: str) -> bytes:
    """Bytes of Z85 ``text`` (a multiple of 5 characters); ``ValueError`` if it is not valid Z85.

    Also accepts the padded tail block of the Rust ``z85`` crate, found in inline DVs written by
    Rust engines: a last block starting with ``k`` ``'#'`` (no plain block can, as 84 * 85**4 >= 2**32)
    holds ``4 - k`` bytes as a big-endian number in its remaining characters.
    """
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"not Z85 (non-ASCII characters): {text!r}") from None
    if len(raw) % 5:
        raise ValueError(f"not Z85 (length {len(raw)} is not a multiple of 5): {text!r}")
    if raw.translate(None, _Z85_ALPHABET):
        raise ValueError(f"not Z85 (characters outside the Z85 alphabet): {text!r}")
    tail = b""
    if raw and raw[-5] == ord("#"):
        digits = raw[-5:].lstrip(b"#")
        size = len(digits) - 1  # k '#' then 5 - k digits for 4 - k bytes
        value = 0
        for c in digits:
            value = value * 85 + _Z85_ALPHABET.index(c)
        if size < 1 or value >> (8 * size):
            raise ValueError(f"not Z85 (invalid padded tail block {raw[-5:].decode()!r}): {text!r}")
        tail = value.to_bytes(size, "big")
        raw = raw[:-5]
    return base64.b85decode(raw.translate(_Z85_TO_B85)) + tail


# ----------------------------------------------------------------------------------- descriptor
@dataclass(frozen=True, slots=True)
class DeletionVectorDescriptor:
    """Where a deletion vector is and how big it is, as stored in ``add``/``remove.deletionVector``.

    ``storage_type`` is ``"u"`` (file next to the data, named by a Z85 UUID with an optional random
    directory prefix), ``"i"`` (inline: Z85 of the serialized bitmap) or ``"p"`` (file at an absolute,
    URL-encoded URI). ``offset`` is where the DV's size field starts in its file (``None`` inline).
    """

    storage_type: str
    path_or_inline_dv: str
    offset: int | None
    size_in_bytes: int
    cardinality: int

    def __post_init__(self) -> None:
        if self.storage_type not in _STORAGE_TYPES:
            raise ProtocolError(
                f"Deletion vector storageType {self.storage_type!r} is not one of 'u', 'i', 'p'; "
                "the table was written by an incompatible writer."
            )
        if self.storage_type == "u" and len(self.path_or_inline_dv) < UUID_Z85_LENGTH:
            raise ProtocolError(
                f"Deletion vector pathOrInlineDv {self.path_or_inline_dv!r} is too short for a "
                f"'u' descriptor (needs an optional prefix plus a {UUID_Z85_LENGTH}-character UUID)."
            )
        if self.storage_type == "i" and self.offset is not None:
            raise ProtocolError("An inline ('i') deletion vector must not have an offset.")
        if self.offset is not None and self.offset < 0:
            raise ProtocolError(f"Deletion vector offset {self.offset} is negative.")
        if self.size_in_bytes < 0 or self.cardinality < 0:
            raise ProtocolError(
                f"Deletion vector sizeInBytes ({self.size_in_bytes}) and cardinality "
                f"({self.cardinality}) must not be negative."
            )

    @property
    def unique_id(self) -> str:
        """``<storageType><pathOrInlineDv>[@<offset>]``: tells versions of one data file apart."""
        base = self.storage_type + self.path_or_inline_dv
        return base if self.offset is None else f"{base}@{self.offset}"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DeletionVectorDescriptor:
        """Parse the JSON/checkpoint struct (``storageType``, ``pathOrInlineDv``, ``offset``...)."""
        try:
            storage_type = d["storageType"]
            path = d["pathOrInlineDv"]
            size = d["sizeInBytes"]
            cardinality = d["cardinality"]
        except KeyError as e:
            raise CorruptLogError(
                f"Deletion vector descriptor {dict(d)!r} lacks the required field {e.args[0]!r}."
            ) from None
        offset = d.get("offset")
        try:
            return cls(
                str(storage_type),
                str(path),
                None if offset is None else int(offset),
                int(size),
                int(cardinality),
            )
        except (TypeError, ValueError) as e:
            raise CorruptLogError(
                f"Deletion vector descriptor {dict(d)!r} is malformed: {e}"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """The protocol's JSON form; ``offset`` is omitted when ``None`` (inline DVs)."""
        out: dict[str, Any] = {
            "storageType": self.storage_type,
            "pathOrInlineDv": self.path_or_inline_dv,
        }
        if self.offset is not None:
            out["offset"] = self.offset
        out["sizeInBytes"] = self.size_in_bytes
        out["cardinality"] = self.cardinality
        return out

    def absolute_path(self, table_root: str) -> str | None:
        """The DV file's URI: ``<root>/[<prefix>/]deletion_vector_<uuid>.bin`` ('u'), the stored URI
        as is ('p'), or ``None`` for an inline DV."""
        if self.storage_type == "i":
            return None
        if self.storage_type == "p":
            return self.path_or_inline_dv
        return f"{table_root.rstrip('/')}/{self._relative_path()}"

    def _relative_path(self) -> str:
        """Path of a 'u' DV file relative to the table root."""
        text = self.path_or_inline_dv
        prefix, encoded = text[:-UUID_Z85_LENGTH], text[-UUID_Z85_LENGTH:]
        try:
            dv_uuid = uuid.UUID(bytes=z85_decode(encoded))
        except ValueError as e:
            raise CorruptLogError(
                f"Deletion vector pathOrInlineDv {text!r} does not end in a Z85-encoded UUID: {e}"
            ) from None
        name = f"deletion_vector_{dv_uuid}.bin"
        return f"{prefix}/{name}" if prefix else name

    def _storage_path(self) -> str:
        """What to hand to ``Storage``: a root-relative path, or a URL-decoded absolute URI."""
        if self.storage_type == "u":
            return self._relative_path()
        return unquote(self.path_or_inline_dv)

    def _inline_bytes(self) -> bytes:
        try:
            raw = z85_decode(self.path_or_inline_dv)
        except ValueError as e:
            raise CorruptLogError(f"Inline deletion vector is not valid Z85: {e}") from None
        if len(raw) < self.size_in_bytes:
            raise CorruptLogError(
                f"Inline deletion vector holds {len(raw)} bytes but sizeInBytes is {self.size_in_bytes}."
            )
        return raw[: self.size_in_bytes]


# ------------------------------------------------------------------------------ bitmap encoding
def _to_bitmap(rows: Any) -> BitMap64:
    arr = np.asarray(rows)
    if arr.ndim != 1:
        raise InvalidArgumentError(f"Row indexes must be a 1-D array, got shape {arr.shape}.")
    if arr.size == 0:
        return BitMap64()
    if arr.dtype.kind not in "iu":
        raise InvalidArgumentError(
            f"Row indexes must be integers, got dtype {arr.dtype}; pass e.g. a numpy uint64 array."
        )
    if arr.dtype.kind == "i" and int(arr.min()) < 0:
        raise InvalidArgumentError(f"Row indexes must be >= 0, got {int(arr.min())}.")
    if int(arr.max()) > MAX_ROW_INDEX:
        raise InvalidArgumentError(f"Row indexes must be < 2**63, got {int(arr.max())}.")
    return BitMap64(array("Q", np.ascontiguousarray(arr, dtype=np.uint64).tobytes()))


def _encode(rows: Any) -> tuple[bytes, int]:
    bitmap = _to_bitmap(rows)
    bitmap.run_optimize()
    data = struct.pack("<I", PORTABLE_MAGIC) + bitmap.serialize()
    if len(data) > _MAX_DV_SIZE:
        raise InvalidArgumentError(
            f"Deletion vector of {len(data)} bytes exceeds the 2 GiB format limit."
        )
    return data, len(bitmap)


def encode_bitmap(rows: Any) -> bytes:
    """``RoaringBitmapArray`` bytes (magic + portable 64-bit Roaring) of a set of row indexes.

    ``rows`` is any 1-D integer array-like (NumPy, Arrow, list); order and duplicates do not matter.
    """
    return _encode(rows)[0]


def _to_rows(bitmap: BitMap64) -> np.ndarray:
    rows = np.frombuffer(bitmap.to_array(), dtype=np.uint64)
    rows.flags.writeable = False
    return rows


def _decode_native(data: bytes, byteorder: str) -> np.ndarray:
    """Legacy format: bitmap count, then per bitmap its size and a 32-bit Roaring; key = index."""
    fmt = "<i" if byteorder == "little" else ">i"
    pos = 4
    (count,) = struct.unpack_from(fmt, data, pos)
    pos += 4
    if count < 0:
        raise ValueError(f"negative bitmap count {count}")
    parts: list[np.ndarray] = []
    for key in range(count):
        (size,) = struct.unpack_from(fmt, data, pos)
        pos += 4
        if size < 0 or pos + size > len(data):
            raise ValueError(f"bitmap {key} of {size} bytes overruns the data")
        low = np.frombuffer(BitMap.deserialize(data[pos : pos + size]).to_array(), dtype=np.uint32)
        parts.append(low.astype(np.uint64) | np.uint64(key << 32))
        pos += size
    rows = np.concatenate(parts) if parts else np.zeros(0, np.uint64)
    rows.flags.writeable = False
    return rows


def decode_bitmap(data: bytes) -> np.ndarray:
    """Sorted, read-only ``uint64`` row indexes of ``RoaringBitmapArray`` bytes.

    Reads the portable format everyone writes, and the legacy native one (including the big-endian
    framing of the protocol document's inline example).
    """
    data = bytes(data)
    if len(data) < 4:
        raise CorruptLogError(
            f"Deletion vector data is {len(data)} bytes, too short for a magic number."
        )
    magic_le = int.from_bytes(data[:4], "little")
    try:
        if magic_le == PORTABLE_MAGIC:
            bitmap = BitMap64.deserialize(data[4:])
            if len(bitmap) and bitmap.max() > MAX_ROW_INDEX:
                raise ValueError("a bucket key has its most significant bit set")
            return _to_rows(bitmap)
        if magic_le == NATIVE_MAGIC:
            return _decode_native(data, "little")
        if int.from_bytes(data[:4], "big") == NATIVE_MAGIC:
            return _decode_native(data, "big")
    except (ValueError, struct.error) as e:
        raise CorruptLogError(f"Deletion vector bitmap cannot be decoded: {e}") from None
    raise CorruptLogError(
        f"Deletion vector has unknown magic number {magic_le} (expected {PORTABLE_MAGIC}); "
        "it was written in a format this version of lakehouse does not know."
    )


def _checked(rows: np.ndarray, dv: DeletionVectorDescriptor) -> np.ndarray:
    if len(rows) != dv.cardinality:
        raise CorruptLogError(
            f"Deletion vector {dv.unique_id!r} holds {len(rows)} rows but its descriptor says "
            f"cardinality {dv.cardinality}; the DV or the log is corrupt."
        )
    return rows


# -------------------------------------------------------------------------------------- reading
def read_deletion_vector(storage: _ByteStorage, dv: DeletionVectorDescriptor) -> np.ndarray:
    """Sorted, read-only ``uint64`` array of the row indexes ``dv`` deletes."""
    return read_deletion_vectors(storage, [dv])[0]


def read_deletion_vectors(
    storage: _ByteStorage, dvs: Sequence[DeletionVectorDescriptor]
) -> list[np.ndarray]:
    """Row indexes of each descriptor, in order. The DVs wanted from one file are fetched with one
    ranged read per cluster of nearby DVs; distinct files are fetched concurrently; each distinct DV
    is decoded once (duplicates share one read-only array)."""
    decoded: dict[str, np.ndarray] = {}
    by_file: dict[str, dict[str, DeletionVectorDescriptor]] = {}
    for dv in dvs:
        if dv.unique_id in decoded:
            continue
        if dv.storage_type == "i":
            decoded[dv.unique_id] = _checked(decode_bitmap(dv._inline_bytes()), dv)
        else:
            by_file.setdefault(dv._storage_path(), {})[dv.unique_id] = dv

    def load(item: tuple[str, dict[str, DeletionVectorDescriptor]]) -> dict[str, np.ndarray]:
        return _read_file(storage, item[0], list(item[1].values()))

    groups = list(by_file.items())
    if len(groups) > 1:
        with ThreadPoolExecutor(max_workers=min(_MAX_READ_THREADS, len(groups))) as pool:
            for part in pool.map(load, groups):
                decoded.update(part)
    elif groups:
        decoded.update(load(groups[0]))
    return [decoded[dv.unique_id] for dv in dvs]


def _read_file(
    storage: _ByteStorage, path: str, dvs: list[DeletionVectorDescriptor]
) -> dict[str, np.ndarray]:
    """Decode ``dvs`` of one file, reading nearby DVs with one ranged read per cluster."""
    located = sorted(
        ((1 if dv.offset is None else dv.offset, dv) for dv in dvs), key=lambda t: t[0]
    )
    spans: list[list[tuple[int, DeletionVectorDescriptor]]] = []
    span_end = -1
    for off, dv in located:
        if spans and off - span_end <= _COALESCE_GAP:
            spans[-1].append((off, dv))
        else:
            spans.append([(off, dv)])
        span_end = max(span_end, off + 8 + dv.size_in_bytes)
    out: dict[str, np.ndarray] = {}
    for span in spans:
        first = span[0][0]
        start = 0 if first < _READ_FROM_START_BELOW else first
        end = max(off + 8 + dv.size_in_bytes for off, dv in span)
        blob = _read_range(storage, path, start, end - start)
        if start == 0 and blob and blob[0] != FILE_FORMAT_VERSION:
            raise UnsupportedFeatureError(
                f"Deletion vector file {path!r} has format version {blob[0]}; only version "
                f"{FILE_FORMAT_VERSION} is supported. Upgrade lakehouse to read this table.",
                feature="deletionVectors",
            )
        for off, dv in span:
            out[dv.unique_id] = _checked(_parse_stored(blob, off - start, path, off, dv), dv)
    return out


def _read_range(storage: _ByteStorage, path: str, start: int, length: int) -> bytes:
    try:
        return storage.read_range(path, start, length)
    except FileNotFoundError:
        raise CorruptLogError(
            f"Deletion vector file {path!r} referenced by the table log does not exist; restore it "
            "from a backup (a VACUUM with too short a retention, or a partial copy, can cause this)."
        ) from None


def _parse_stored(
    blob: bytes, pos: int, path: str, off: int, dv: DeletionVectorDescriptor
) -> np.ndarray:
    """Check and decode the ``size | bitmap | crc`` record at ``pos`` of ``blob``."""
    chunk = blob[pos : pos + 8 + dv.size_in_bytes]
    if len(chunk) < 8 + dv.size_in_bytes:
        raise CorruptLogError(
            f"Deletion vector file {path!r} is truncated: DV at offset {off} needs "
            f"{8 + dv.size_in_bytes} bytes, the file holds {len(chunk)} from there."
        )
    (size,) = struct.unpack_from(">I", chunk, 0)
    if size != dv.size_in_bytes:
        raise CorruptLogError(
            f"Deletion vector at offset {off} of {path!r} is {size} bytes but the log says "
            f"sizeInBytes {dv.size_in_bytes}."
        )
    data = chunk[4 : 4 + size]
    (checksum,) = struct.unpack_from(">I", chunk, 4 + size)
    if zlib.crc32(data) != checksum:
        raise CorruptLogError(
            f"Deletion vector at offset {off} of {path!r} fails its CRC-32 check; the file is corrupt."
        )
    return decode_bitmap(data)


# -------------------------------------------------------------------------------------- writing
def write_deletion_vectors(
    storage: _ByteStorage, rows_per_file: Iterable[Any], *, prefix: str = ""
) -> list[DeletionVectorDescriptor]:
    """Write several DVs into ONE new file ``[<prefix>/]deletion_vector_<uuid>.bin`` and return a
    'u' descriptor per input, in order. ``prefix`` (letters/digits, e.g. a random 2-character
    directory like Spark's) spreads DV files over key prefixes; default none."""
    if not _PREFIX_RE.fullmatch(prefix):
        raise InvalidArgumentError(
            f"Deletion vector prefix {prefix!r} must contain only ASCII letters and digits."
        )
    dv_uuid = uuid.uuid4()
    path_or_inline = prefix + z85_encode(dv_uuid.bytes)
    parts = [bytes([FILE_FORMAT_VERSION])]
    position = 1
    descriptors: list[DeletionVectorDescriptor] = []
    for rows in rows_per_file:
        data, cardinality = _encode(rows)
        parts += [struct.pack(">I", len(data)), data, struct.pack(">I", zlib.crc32(data))]
        descriptors.append(
            DeletionVectorDescriptor("u", path_or_inline, position, len(data), cardinality)
        )
        position += 8 + len(data)
    if not descriptors:
        return []
    storage.write_bytes(descriptors[0]._relative_path(), b"".join(parts))
    return descriptors


def write_deletion_vector(
    storage: _ByteStorage, rows: Any, *, prefix: str = ""
) -> DeletionVectorDescriptor:
    """Write one DV to a new file (version byte, BE size, bitmap, BE CRC-32); returns its 'u'
    descriptor with ``offset=1``."""
    return write_deletion_vectors(storage, [rows], prefix=prefix)[0]


def inline_deletion_vector(rows: Any) -> DeletionVectorDescriptor:
    """An inline ('i') descriptor holding the Z85-encoded bitmap of ``rows`` (for small DVs)."""
    data, cardinality = _encode(rows)
    return DeletionVectorDescriptor("i", z85_encode(data), None, len(data), cardinality)
