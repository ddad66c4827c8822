"""spark-submit application of the `train_ranker` stage; arguments: --date YYYY-MM-DD."""

from recsys_lib.jobs import main

if __name__ == "__main__":
    raise SystemExit(main("train_ranker"))
