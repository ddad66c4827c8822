"""The warehouse: table contracts, reading and writing Delta tables, quality checks,
write-audit-publish and the generated table docs.
"""
