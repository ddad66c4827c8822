"""docs/tables.md, generated from the table contracts (``recsys docs-tables``)."""

from __future__ import annotations

from recsys_lib.tables import ALL_TABLES

HEADER = """# Tables

Generated from `recsys_lib/tables.py` by `recsys docs-tables`; do not edit by hand.
Every table is a Delta table under the warehouse root (`paths.warehouse`), at
`<warehouse>/<schema>/<table>`, registered in Spark SQL as `<schema>.<table>`.
A stage replaces exactly its `dt` partition (or its slice of a shared `ops.*` table).
"""


def tables_markdown() -> str:
    parts = [HEADER]
    for table in ALL_TABLES:
        parts.append(f"\n## `{table.name}`\n\n")
        parts.append(f"Grain: {table.grain}. Partitioned by `{', '.join(table.partition_by)}`.")
        if table.key:
            parts.append(f" Key: `({', '.join(table.key)})`.")
        parts.append("\n\n| column | type | nullable | meaning |\n|---|---|---|---|\n")
        for c in table.columns:
            nullable = "yes" if c.nullable else "no"
            parts.append(f"| `{c.name}` | {c.dtype.simpleString()} | {nullable} | {c.doc} |\n")
    return "".join(parts)
