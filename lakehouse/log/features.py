"""Which protocol versions and table features lakehouse reads and writes.

The single place that decides whether a table may be read or written. Anything not listed here is
refused with :class:`UnsupportedFeatureError` naming the feature: a reader that silently ignores a
feature it does not understand returns wrong rows.
"""

from __future__ import annotations

from lakehouse.errors import UnsupportedFeatureError
from lakehouse.log.actions import Protocol

MAX_READER_VERSION = 3
MAX_WRITER_VERSION = 7

#: Reader features whose semantics the reader implements.
READER_FEATURES = frozenset({
    "columnMapping",
    "deletionVectors",
    "timestampNtz",
    "v2Checkpoint",
    "vacuumProtocolCheck",
    "typeWidening",
    "typeWidening-preview",
})

#: Writer features the writer honours when it commits to a table that has them.
WRITER_FEATURES = frozenset({
    "appendOnly",
    "invariants",
    "checkConstraints",
    "generatedColumns",
    "columnMapping",
    "deletionVectors",
    "timestampNtz",
    "changeDataFeed",
    "domainMetadata",
    "inCommitTimestamp",
    "v2Checkpoint",
    "vacuumProtocolCheck",
    "typeWidening",
    "typeWidening-preview",
})


def ensure_readable(protocol: Protocol, where: str = "") -> None:
    """Raise :class:`UnsupportedFeatureError` unless every reader requirement is supported."""
    at = f" ({where})" if where else ""
    if protocol.min_reader_version > MAX_READER_VERSION:
        raise UnsupportedFeatureError(
            f"table{at} requires reader version {protocol.min_reader_version}; lakehouse reads "
            f"up to {MAX_READER_VERSION}. Upgrade lakehouse or read it with its writer.",
            feature=f"readerVersion{protocol.min_reader_version}",
        )
    if protocol.min_reader_version == 3:
        unknown = sorted((protocol.reader_features or frozenset()) - READER_FEATURES)
        if unknown:
            raise UnsupportedFeatureError(
                f"table{at} uses reader feature(s) {', '.join(unknown)} which lakehouse cannot "
                f"read; supported: {', '.join(sorted(READER_FEATURES))}",
                feature=unknown[0],
            )


def ensure_writable(protocol: Protocol, where: str = "") -> None:
    """Raise :class:`UnsupportedFeatureError` unless we honour every writer requirement."""
    ensure_readable(protocol, where)
    at = f" ({where})" if where else ""
    if protocol.min_writer_version > MAX_WRITER_VERSION:
        raise UnsupportedFeatureError(
            f"table{at} requires writer version {protocol.min_writer_version}; lakehouse writes "
            f"up to {MAX_WRITER_VERSION}.",
            feature=f"writerVersion{protocol.min_writer_version}",
        )
    if protocol.min_writer_version == 7:
        unknown = sorted((protocol.writer_features or frozenset()) - WRITER_FEATURES)
        if unknown:
            raise UnsupportedFeatureError(
                f"table{at} uses writer feature(s) {', '.join(unknown)} which lakehouse cannot "
                "write correctly, so it refuses to write; you can still read the table.",
                feature=unknown[0],
            )


def reader_feature_enabled(protocol: Protocol, feature: str, min_legacy_reader: int | None) -> bool:
    """Whether ``feature`` is active: listed on reader v3, or implied by a legacy version."""
    if protocol.min_reader_version >= 3:
        return protocol.has_reader_feature(feature)
    return min_legacy_reader is not None and protocol.min_reader_version >= min_legacy_reader
