"""docs/tables.md, generated from the table contracts (``recsys docs-tables``)."""

from __future__ import annotations

import math

from recsys_lib.warehouse.tables import ALL_TABLES, Column

HEADER = """# Tables

Generated from `recsys_lib/warehouse/tables.py` by `recsys docs-tables`; do not edit by hand.
Every table is a Delta table under the warehouse root (`paths.warehouse`), at
`<warehouse>/<schema>/<table>`, registered in Spark SQL as `<schema>.<table>`.
A stage replaces exactly its `dt` partition (or its slice of a shared `ops.*` table).

Each stage checks what it writes against this contract before publishing (results in
`ops.quality_checks`): at least one row, rows within a factor of yesterday's
(`quality.min_row_ratio` .. `quality.max_row_ratio`), no null in a non-nullable column,
values inside the *checks* column, no duplicate key. Null shares of nullable columns are
recorded. Formulas of the feature tables: [features.md](features.md).
"""


def _rule(column: Column) -> str:
    if column.value_range is not None:
        low, high = column.value_range
        return f">= {low:g}" if high == math.inf else f"{low:g} .. {high:g}"
    if column.accepted is not None:
        return ", ".join(f"`{v}`" for v in column.accepted)
    return ""


def tables_markdown() -> str:
    parts = [HEADER]
    for table in ALL_TABLES:
        parts.append(f"\n## `{table.name}`\n\n")
        parts.append(f"Grain: {table.grain}. Partitioned by `{', '.join(table.partition_by)}`.")
        if table.key:
            parts.append(f" Key: `({', '.join(table.key)})`.")
        parts.append("\n\n| column | type | nullable | checks | meaning |\n")
        parts.append("|---|---|---|---|---|\n")
        for c in table.columns:
            nullable = "yes" if c.nullable else "no"
            parts.append(
                f"| `{c.name}` | {c.dtype.simpleString()} | {nullable} | {_rule(c)} | {c.doc} |\n"
            )
    return "".join(parts)
