"""spark-submit application of the recsys_erase_user DAG; arguments: --ids-file F --date D."""

from recsys_lib.jobs import erase

if __name__ == "__main__":
    raise SystemExit(erase())
