"""spark-submit application for the `recommend` stage: `spark-submit jobs/recommend.py --date YYYY-MM-DD`."""

from recsys_lib.jobs import main

if __name__ == "__main__":
    raise SystemExit(main("recommend"))
