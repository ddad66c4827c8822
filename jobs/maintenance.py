"""spark-submit application of the recsys_maintenance DAG; arguments: --task T --date D."""

from recsys_lib.jobs import maintain

if __name__ == "__main__":
    raise SystemExit(maintain())
