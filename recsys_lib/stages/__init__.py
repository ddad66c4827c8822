"""The DAG tasks, one module per task and named as it: the only code that reads or writes
tables. A stage never imports another stage; what two stages share lives in a lower layer
(docs/architecture.md, "How the code is layered").
"""
