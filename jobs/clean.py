"""spark-submit application for the `clean` stage: `spark-submit jobs/clean.py --date YYYY-MM-DD`."""

from recsys_lib.jobs import main

if __name__ == "__main__":
    raise SystemExit(main("clean"))
