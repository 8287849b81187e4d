"""The immutable MERGE builder: ``t.merge(source, on).when_...().execute()``.

Each ``when_*`` call returns a new builder with one more clause, so a partially built merge can
be reused or branched safely. Clauses keep their order: within each kind (matched, not matched,
not matched by source) the first clause whose condition holds decides a row's fate. As in Delta,
only the last clause of a kind may omit its condition (a later one could never apply).

Example:
    >>> import lakehouse, pyarrow as pa
    >>> t = lakehouse.write("memory://doc-merge", pa.table({"id": [1, 2], "v": ["a", "b"]}))
    >>> m = (t.merge(pa.table({"id": [2, 3], "v": ["B", "C"]}), "target.id = source.id")
    ...       .when_matched_update_all().when_not_matched_insert_all().execute())
    >>> m.num_target_rows_updated, m.num_target_rows_inserted
    (1, 1)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from lakehouse.errors import InvalidArgumentError

if TYPE_CHECKING:
    from lakehouse.merge.metrics import MergeMetrics
    from lakehouse.table import Table

Kind = Literal["matched", "not_matched", "not_matched_by_source"]
Action = Literal["update", "delete", "insert"]
_KIND_SQL = {"matched": "WHEN MATCHED", "not_matched": "WHEN NOT MATCHED",
             "not_matched_by_source": "WHEN NOT MATCHED BY SOURCE"}


@dataclass(frozen=True, eq=False)
class Clause:
    """One WHEN clause. ``assignments`` None means ``*`` (all columns by name)."""

    kind: Kind
    action: Action
    condition: Any = None                                # SQL string or polars expression
    assignments: tuple[tuple[str, Any], ...] | None = None
    except_columns: tuple[str, ...] = ()

    def describe(self) -> dict[str, str]:
        """Delta's ``{"predicate": ..., "actionType": ...}`` entry for ``operationParameters``."""
        out: dict[str, str] = {"actionType": self.action}
        if self.condition is not None:
            out["predicate"] = str(self.condition)
        return out


def _assignments(values: Mapping[str, Any] | None, what: str) -> tuple[tuple[str, Any], ...]:
    if not isinstance(values, Mapping) or not values:
        raise InvalidArgumentError(
            f"{what} needs a non-empty mapping of column name to SQL expression (or polars "
            f"expression), got {values!r}"
        )
    for k in values:
        if not isinstance(k, str) or not k:
            raise InvalidArgumentError(f"{what}: column names must be strings, got {k!r}")
    return tuple(values.items())


def _names(cols: str | Sequence[str] | None) -> tuple[str, ...]:
    if cols is None:
        return ()
    if isinstance(cols, str):
        return (cols,)
    return tuple(cols)


@dataclass(frozen=True, eq=False)
class MergeBuilder:
    """A MERGE being described; :meth:`execute` runs it as one transaction."""

    table: Table
    source: Any
    on: str | tuple[str, ...]
    source_alias: str = "source"
    target_alias: str = "target"
    schema_evolution: bool = False
    clauses: tuple[Clause, ...] = ()

    def __post_init__(self) -> None:
        if not self.source_alias or not self.target_alias:
            raise InvalidArgumentError("source_alias and target_alias must be non-empty")
        if self.source_alias.lower() == self.target_alias.lower():
            raise InvalidArgumentError(
                f"source_alias and target_alias must differ, both are {self.source_alias!r}"
            )
        if isinstance(self.on, str):
            if not self.on.strip():
                raise InvalidArgumentError("on= must be a SQL condition or column name(s)")
        elif not isinstance(self.on, tuple) or not self.on \
                or not all(isinstance(c, str) and c for c in self.on):
            raise InvalidArgumentError(
                f"on= must be a SQL condition, a column name or a list of column names; got {self.on!r}"
            )

    def _add(self, clause: Clause) -> MergeBuilder:
        for c in self.clauses:
            if c.kind == clause.kind and c.condition is None:
                raise InvalidArgumentError(
                    f"{_KIND_SQL[clause.kind]} clause after an unconditional one can never apply: "
                    f"only the last {_KIND_SQL[clause.kind]} clause may omit its condition. "
                    "Add a condition to the earlier clause or drop this one."
                )
        return replace(self, clauses=(*self.clauses, clause))

    # ----------------------------------------------------------------------- matched
    def when_matched_update(self, set: Mapping[str, Any], condition: Any = None) -> MergeBuilder:
        """Update matched target rows: ``set`` maps target columns to expressions over both."""
        return self._add(Clause("matched", "update", condition,
                                _assignments(set, "when_matched_update(set=...)")))

    def when_matched_update_all(self, condition: Any = None,
                                except_columns: str | Sequence[str] | None = None) -> MergeBuilder:
        """Update every target column from the source column of the same name."""
        return self._add(Clause("matched", "update", condition, None, _names(except_columns)))

    def when_matched_delete(self, condition: Any = None) -> MergeBuilder:
        return self._add(Clause("matched", "delete", condition))

    # ------------------------------------------------------------------- not matched
    def when_not_matched_insert(self, values: Mapping[str, Any],
                                condition: Any = None) -> MergeBuilder:
        """Insert source rows matching no target row; unassigned columns are NULL."""
        return self._add(Clause("not_matched", "insert", condition,
                                _assignments(values, "when_not_matched_insert(values=...)")))

    def when_not_matched_insert_all(self, condition: Any = None,
                                    except_columns: str | Sequence[str] | None = None) -> MergeBuilder:
        return self._add(Clause("not_matched", "insert", condition, None, _names(except_columns)))

    # --------------------------------------------------------- not matched by source
    def when_not_matched_by_source_update(self, set: Mapping[str, Any],
                                          condition: Any = None) -> MergeBuilder:
        """Update target rows no source row matches (expressions see target columns only)."""
        return self._add(Clause("not_matched_by_source", "update", condition,
                                _assignments(set, "when_not_matched_by_source_update(set=...)")))

    def when_not_matched_by_source_delete(self, condition: Any = None) -> MergeBuilder:
        return self._add(Clause("not_matched_by_source", "delete", condition))

    # ----------------------------------------------------------------------- execute
    def execute(self) -> MergeMetrics:
        """Run the MERGE as one commit and move the table handle to the new version.

        Raises:
            MergeCardinalityError: several source rows matched one target row that an update or
                delete clause applies to (deduplicate the source).
            SchemaMismatchError: a value cannot be stored in its column without loss.
            InvalidArgumentError: an expression is invalid or references unknown columns.
            CommitConflictError: a concurrent commit changed data this merge read.
        """
        if not self.clauses:
            raise InvalidArgumentError(
                "a MERGE needs at least one when_matched_*/when_not_matched_* clause"
            )
        from lakehouse.merge.executor import execute_merge

        return execute_merge(self)
