from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.transforms.top_n import top_n_per


def test_the_first_n_of_each_group_ties_broken_by_the_last_key(spark) -> None:
    by_score = [F.desc(C.SCORE), F.asc(C.ITEM_ID)]
    rows = [("a", 3, 0.5), ("a", 1, 0.5), ("a", 2, 0.9), ("a", 4, 0.1), ("b", 7, 0.2)]
    frame = spark.createDataFrame(rows, f"{C.USER_ID} string, {C.ITEM_ID} long, {C.SCORE} double")
    got = sorted(
        (r[C.USER_ID], r[C.RANK], r[C.ITEM_ID])
        for r in top_n_per(frame, [C.USER_ID], by_score, 3).collect()
    )
    # Items 1 and 3 tie at 0.5: the smaller id first; item 4 is past the cut.
    assert got == [("a", 1, 2), ("a", 2, 1), ("a", 3, 3), ("b", 1, 7)]
    every = top_n_per(frame, [C.USER_ID], by_score, None, "_n")
    assert every.count() == 5 and "_n" in every.columns
