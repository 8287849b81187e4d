"""Which protocol versions and table features lakehouse reads and writes.

The single place that decides whether a table may be read or written. Anything not listed here is
refused with :class:`UnsupportedFeatureError` naming the feature: a reader that silently ignores a
feature it does not understand returns wrong rows.
"""

from __future__ import annotations

from collections.abc import Mapping

from lakehouse.errors import UnsupportedFeatureError
from lakehouse.log.actions import Protocol

MAX_READER_VERSION = 3
MAX_WRITER_VERSION = 7

#: Reader features whose semantics the reader implements.
READER_FEATURES = frozenset({
    "variantType",
    "variantType-preview",
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


# Features a table gets from its schema/configuration, and the legacy versions implying them.
_LEGACY_WRITER = {"appendOnly": 2, "invariants": 2, "checkConstraints": 3, "generatedColumns": 4,
                  "changeDataFeed": 4, "columnMapping": 5}
_READER_FEATURES_NEEDED = {"columnMapping", "deletionVectors", "timestampNtz", "v2Checkpoint",
                           "typeWidening", "vacuumProtocolCheck"}


def _true(config: Mapping[str, str], key: str) -> bool:
    return str(config.get(key, "false")).lower() == "true"


def required_features(schema_json: str, configuration: Mapping[str, str]) -> set[str]:
    """Table features implied by a schema and table properties (what a new table needs)."""
    feats: set[str] = set()
    if _true(configuration, "delta.appendOnly"):
        feats.add("appendOnly")
    if any(k.startswith("delta.constraints.") for k in configuration):
        feats.add("checkConstraints")
    if '"delta.generationExpression"' in schema_json:
        feats.add("generatedColumns")
    if '"delta.invariants"' in schema_json:
        feats.add("invariants")
    if _true(configuration, "delta.enableChangeDataFeed"):
        feats.add("changeDataFeed")
    if configuration.get("delta.columnMapping.mode", "none") in ("name", "id"):
        feats.add("columnMapping")
    if _true(configuration, "delta.enableDeletionVectors"):
        feats.add("deletionVectors")
    if _true(configuration, "delta.enableInCommitTimestamps"):
        feats.add("inCommitTimestamp")
    if '"timestamp_ntz"' in schema_json:
        feats.add("timestampNtz")
    return feats


def protocol_for(schema_json: str, configuration: Mapping[str, str],
                 current: Protocol | None = None) -> Protocol:
    """The lowest protocol supporting what the table uses (never lower than ``current``).

    Legacy versions (reader 1-2, writer 2-5) when every feature has one; otherwise table
    features (reader 3 only if a reader feature is needed, writer 7) listing all features,
    including those the legacy versions of ``current`` implied.
    """
    feats = required_features(schema_json, configuration)
    cur = current or Protocol(1, 2)
    legacy_ok = all(f in _LEGACY_WRITER for f in feats) and cur.min_writer_version < 7 \
        and cur.min_reader_version < 3
    if legacy_ok:
        writer = max([cur.min_writer_version, 2, *(_LEGACY_WRITER[f] for f in feats)])
        reader = max(cur.min_reader_version, 2 if "columnMapping" in feats else 1)
        return Protocol(reader, writer)
    # table features: carry over what the current legacy versions implied
    implied = {f for f, v in _LEGACY_WRITER.items() if cur.min_writer_version >= v
               and cur.min_writer_version < 7 and f != "columnMapping"}
    if cur.min_reader_version == 2:
        implied.add("columnMapping")
    writer_feats = set(cur.writer_features or ()) | feats | implied
    reader_feats = set(cur.reader_features or ()) | {f for f in writer_feats
                                                      if f in _READER_FEATURES_NEEDED}
    if reader_feats:
        return Protocol(3, 7, frozenset(reader_feats), frozenset(writer_feats))
    return Protocol(max(cur.min_reader_version, 1), 7, None, frozenset(writer_feats))
