from recsys_lib.warehouse.docs import tables_markdown
from recsys_lib.warehouse.tables import ALL_TABLES
from tests.conftest import REPO

DOC = REPO / "docs" / "tables.md"


def test_tables_doc_is_current() -> None:
    assert DOC.read_text() == tables_markdown(), "run `recsys docs-tables`"


def test_every_column_is_documented() -> None:
    for table in ALL_TABLES:
        assert table.columns[0].name == "dt"
        assert all(c.doc for c in table.columns), table.name
        assert set(table.key) <= set(table.column_names), table.name
