"""Side-by-side benchmarks of lakehouse against deltalake (delta-rs) and raw pyarrow.

Performance claims are measured here, as ratios from one run on one machine, never in timed
unit tests. Run ``python -m benchmarks run --scale ci|small|full``; see ``benchmarks/README.md``.
"""

from __future__ import annotations

SYSTEMS: tuple[str, ...] = ("lakehouse", "deltalake", "deltalake-fast", "pyarrow")
"""Every system the harness knows, in table-column order."""
