"""spark-submit application for the `train_als` stage: `spark-submit jobs/train_als.py --date YYYY-MM-DD`."""

from recsys_lib.jobs import main

if __name__ == "__main__":
    raise SystemExit(main("train_als"))
