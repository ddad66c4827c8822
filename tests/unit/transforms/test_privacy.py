"""The pseudonym: HMAC-SHA256 under a key that every run needs and no plan holds."""

from __future__ import annotations

import pytest

from recsys_lib.transforms.privacy import (
    DEMO_KEY,
    MissingKeyError,
    executor_key,
    hmac_sha256_hex,
    hmac_sha256_many,
    pseudonym_column,
    pseudonym_key,
    use_demo_key,
)
from tests.conftest import TEST_KEY

VARIABLE = "RECSYS_PSEUDONYM_KEY"


def test_rfc_4231_vectors() -> None:
    cases = [  # test cases 1, 2 and 6: a short key, a text key, a key longer than a block
        (b"\x0b" * 20, "Hi There",
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        (b"Jefe", "what do ya want for nothing?",
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        (b"\xaa" * 131, "Test Using Larger Than Block-Size Key - Hash Key First",
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    ]  # fmt: skip
    for key, message, digest in cases:
        assert hmac_sha256_hex(key, message) == digest
        assert hmac_sha256_many(key, [message, None, message]) == [digest, None, digest]


def test_the_spark_column_is_the_hmac_under_the_worker_s_key(spark) -> None:
    from pyspark.sql import functions as F

    ids = ["1134473", "0", "héllo", ""]
    frame = spark.createDataFrame([(i,) for i in ids] + [(None,)], "id string")
    hashed = frame.select(pseudonym_column(F.col("id"), VARIABLE).alias("p"))
    got = [r[0] for r in hashed.collect()]
    assert got == [hmac_sha256_hex(TEST_KEY.encode(), i) for i in ids] + [None]
    # The plan names the function and its column; the key is nowhere in it.
    plan = hashed._jdf.queryExecution().toString()
    assert "pseudonym(id" in plan and TEST_KEY not in plan and TEST_KEY.encode().hex() not in plan


def test_a_worker_without_the_key_fails_naming_the_variable(spark) -> None:
    from pyspark.sql import functions as F

    frame = spark.createDataFrame([("1",)], "id string")
    with pytest.raises(Exception, match="RECSYS_NO_SUCH_KEY is not set on the executor"):
        frame.select(pseudonym_column(F.col("id"), "RECSYS_NO_SUCH_KEY")).collect()
    with pytest.raises(MissingKeyError, match="docs/deployment.md"):
        executor_key("RECSYS_NO_SUCH_KEY", {})


def test_no_key_fails_with_the_variable_and_how_to_make_one(settings) -> None:
    assert pseudonym_key(settings, {VARIABLE: "abc"}) == b"abc"
    with pytest.raises(MissingKeyError) as failed:
        pseudonym_key(settings, {})
    message = str(failed.value)
    assert VARIABLE in message and "openssl rand -hex 32" in message and "\n" not in message


def test_the_demo_key_is_only_set_on_purpose_and_warns_loudly(settings, caplog) -> None:
    environ: dict[str, str] = {}
    use_demo_key(settings, environ)
    assert environ == {VARIABLE: DEMO_KEY}
    assert pseudonym_key(settings, environ) == DEMO_KEY.encode()
    assert "PUBLIC DEMO KEY" in caplog.text
    mine = {VARIABLE: "a real key"}
    use_demo_key(settings, mine)  # a key that is set stays
    assert mine == {VARIABLE: "a real key"}
