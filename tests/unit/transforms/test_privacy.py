import dataclasses

import pytest

from recsys_lib.transforms.privacy import (
    DEMO_KEY,
    MissingKeyError,
    hmac_sha256_column,
    hmac_sha256_hex,
    pseudonym_key,
)


def test_spark_hmac_matches_python_hmac(spark) -> None:
    from pyspark.sql import functions as F

    ids = ["1134473", "0", "héllo", ""]
    long_key = b"k" * 100  # longer than a SHA-256 block: hashed first, as RFC 2104 says
    for key in (b"secret", long_key):
        frame = spark.createDataFrame([(i,) for i in ids] + [(None,)], "id string")
        got = [r[0] for r in frame.select(hmac_sha256_column(key, F.col("id"))).collect()]
        assert got == [hmac_sha256_hex(key, i) for i in ids] + [None]


def test_known_vector() -> None:
    # RFC 4231 test case 2
    assert (
        hmac_sha256_hex(b"Jefe", "what do ya want for nothing?")
        == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_key_from_environment_or_refusal(settings) -> None:
    assert pseudonym_key(settings, {"RECSYS_PSEUDONYM_KEY": "abc"}) == b"abc"
    assert pseudonym_key(settings, {}) == DEMO_KEY  # local.yaml allows the demo key
    strict = dataclasses.replace(
        settings, privacy=dataclasses.replace(settings.privacy, allow_demo_key=False)
    )
    with pytest.raises(MissingKeyError, match="RECSYS_PSEUDONYM_KEY"):
        pseudonym_key(strict, {})


def test_demo_key_warns_loudly(settings, caplog) -> None:
    pseudonym_key(settings, {})
    assert "PUBLIC DEMO KEY" in caplog.text
