"""spark-submit application for the `ingest` stage: `spark-submit jobs/ingest.py --date YYYY-MM-DD`."""

from recsys_lib.jobs import main

if __name__ == "__main__":
    raise SystemExit(main("ingest"))
