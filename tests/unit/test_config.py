import dataclasses
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from recsys_lib.config import ConfigError, Settings, _coerce, env_overrides, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_base_and_local_files_merge(tmp_path: Path) -> None:
    settings = load_settings("local", conf_dir=REPO / "conf", home=tmp_path, environ={})
    assert settings.spark.master == "local[2]"  # from local.yaml
    assert settings.als.window_days == 30  # from base.yaml
    assert settings.als.event_weights["purchase"] == 8.0
    assert settings.warehouse == str(tmp_path / "warehouse")
    assert settings.tracking_uri == f"sqlite:///{tmp_path}/mlflow/mlflow.db"


def test_environment_variables_override_files(tmp_path: Path) -> None:
    environ = {
        "RECSYS__ALS__FACTORS": "128",
        "RECSYS__SPARK__MASTER": "spark://127.0.0.1:7077",
        "RECSYS__ALS__EVENT_WEIGHTS__CART": "5",
        "RECSYS__HISTORY__TOLERATE_MISSING_DAYS": "true",
        "UNRELATED": "x",
    }
    settings = load_settings("local", conf_dir=REPO / "conf", home=tmp_path, environ=environ)
    assert settings.als.factors == 128
    assert settings.spark.master == "spark://127.0.0.1:7077"
    assert settings.als.event_weights == {"view": 1.0, "cart": 5.0, "purchase": 8.0}
    assert settings.history.tolerate_missing_days is True


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings("local", conf_dir=REPO / "conf", home=tmp_path, environ={})
    with pytest.raises(AttributeError):
        settings.als.factors = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.als.event_weights["view"] = 2.0  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RECSYS__ALS__FACTROS", "8", "unknown keys"),
        ("RECSYS__ALS__FACTORS", "many", "expected int"),
        ("RECSYS__HISTORY__TOLERATE_MISSING_DAYS", "maybe", "expected true/false"),
        # The fallback to the public demo key is gone, in every environment.
        ("RECSYS__PRIVACY__ALLOW_DEMO_KEY", "true", "unknown keys"),
        ("RECSYS__ALS", "1", "RECSYS__SECTION__KEY"),
        # Keyed mappings take their keys and no other (a typo would otherwise be kept).
        ("RECSYS__FEATURES__EVENT_WEIGHTS__VEIW", "2", "unknown keys \\['veiw'\\].*view, cart"),
        ("RECSYS__ALS__EVENT_WEIGHTS__CLICK", "2", "als.event_weights: unknown keys"),
        ("RECSYS__IMPORTANCE__EVENT_VALUES__BOUGHT", "1", "none, view, cart, purchase"),
        ("RECSYS__BOUGHT_TOGETHER__EVENT_TYPES", "[cart, buy]", "'buy' is not one of"),
    ],
)
def test_bad_overrides_fail_with_the_key(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings("local", conf_dir=REPO / "conf", home=tmp_path, environ={name: value})


def test_unknown_environment_and_missing_conf(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no configuration file"):
        load_settings("staging", conf_dir=REPO / "conf", home=tmp_path, environ={})
    with pytest.raises(ConfigError, match="configuration not found"):
        load_settings(conf_dir=tmp_path, home=tmp_path, environ={})


def test_env_overrides_parse_yaml_scalars() -> None:
    assert env_overrides({"RECSYS__A__B": "1.5", "RECSYS__A__C": "true"}) == {
        "a": {"b": 1.5, "c": True}
    }


def test_a_spark_setting_from_the_environment_keeps_its_case(tmp_path: Path) -> None:
    # Spark's keys are case-sensitive: spark.sql.autobroadcastjointhreshold is ignored.
    environ = {"RECSYS__SPARK__CONF__spark.sql.autoBroadcastJoinThreshold": "-1"}
    settings = load_settings("local", conf_dir=REPO / "conf", home=tmp_path, environ=environ)
    assert settings.spark.conf["spark.sql.autoBroadcastJoinThreshold"] == "-1"
    assert "spark.sql.autobroadcastjointhreshold" not in settings.spark.conf


def test_a_blank_text_setting_is_empty_not_none(tmp_path: Path) -> None:
    # A blank variable parses as YAML null; a text setting takes it as empty, so no "None"
    # reaches a command line (spark-submit took it for a main class).
    environ = {"RECSYS__SPARK__SUBMIT_JAVA_OPTIONS": " "}
    settings = load_settings("local", conf_dir=REPO / "conf", home=tmp_path, environ=environ)
    assert settings.spark.submit_java_options == ""
    with pytest.raises(ConfigError, match="expected int"):
        load_settings(
            "local", conf_dir=REPO / "conf", home=tmp_path, environ={"RECSYS__ALS__FACTORS": " "}
        )


def test_a_blank_list_setting_is_the_empty_list(tmp_path: Path) -> None:
    def groups(value: str) -> tuple[str, ...]:
        environ = {"RECSYS__CANDIDATES__THIN_GROUPS": value}
        return load_settings(
            "local", conf_dir=REPO / "conf", home=tmp_path, environ=environ
        ).candidates.thin_groups

    assert groups("") == groups(" ") == groups("[]") == ()
    assert (
        groups("one_event, one_day")
        == groups("[one_event, one_day]")
        == (
            "one_event",
            "one_day",
        )
    )


def test_a_source_profile_sets_the_input_and_keys_override_it(tmp_path: Path) -> None:
    environ = {
        "RECSYS__INPUT__SOURCE": "rees46",
        "RECSYS__INPUT__TIMESTAMP__TIMEZONE": "Asia/Tokyo",
    }
    source = load_settings("local", conf_dir=REPO / "conf", home=tmp_path, environ=environ).input
    assert (source.format, source.header, source.timestamp.unit) == ("csv", True, "iso")
    assert source.timestamp.timezone == "Asia/Tokyo"
    assert source.column("category") == "category_id" and source.column("transaction") is None
    assert source.drop_events == ("remove_from_cart",)
    rr = load_settings("local", conf_dir=REPO / "conf", home=tmp_path, environ={}).input
    assert rr.source == "retailrocket" and rr.event_types["addtocart"] == "cart"


def test_a_shop_of_its_own_is_a_file_of_a_few_lines(tmp_path: Path) -> None:
    (tmp_path / "myshop.yaml").write_text(
        "header: false\n"
        "names: [who, what, item, when]\n"
        "columns: {user: who, event: what, item: item, timestamp: when}\n"
        "event_types: {seen: view, basket: cart, bought: purchase}\n"
        "timestamp: {unit: s}\n"
    )
    environ = {"RECSYS__INPUT__SOURCE": str(tmp_path / "myshop.yaml")}
    source = load_settings("local", conf_dir=REPO / "conf", home=tmp_path, environ=environ).input
    assert source.names == ("who", "what", "item", "when") and source.timestamp.unit == "s"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"RECSYS__INPUT__SOURCE": "nosuchshop"}, r"no source file .*nosuchshop\.yaml .*rees46"),
        ({"RECSYS__INPUT__FORMAT": "retailrocket"}, "names a source now; set input.source"),
        ({"RECSYS__INPUT__FORMAT": "xml"}, "input.format: 'xml' is not one of"),
        ({"RECSYS__INPUT__COLUMNS__COLOUR": "c"}, r"input.columns: unknown fields \['colour'\]"),
        ({"RECSYS__INPUT__SOURCE": ""}, r"map the fields \['timestamp', 'user', 'item', 'event'\]"),
        ({"RECSYS__INPUT__EVENT_TYPES__LIKE": "love"}, r"\{'like': 'love'\} map onto no event"),
        ({"RECSYS__INPUT__DROP_EVENTS": "[view]"}, r"\['view'\] are also mapped"),
        ({"RECSYS__INPUT__HEADER": "false"}, "a file without a header needs its column names"),
        ({"RECSYS__INPUT__LAYOUT": "weekly"}, "input.layout: 'weekly' is not one of"),
    ],
)
def test_a_bad_source_fails_with_the_key(tmp_path: Path, environ: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings("local", conf_dir=REPO / "conf", home=tmp_path, environ=environ)


def test_a_source_file_with_an_unknown_key_is_named(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("format: csv\nevents_path: /data\n")
    environ = {"RECSYS__INPUT__SOURCE": str(tmp_path / "bad.yaml")}
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown keys \['events_path'\]"):
        load_settings("local", conf_dir=REPO / "conf", home=tmp_path, environ=environ)


def _defaults_in_both(cls: type, data: dict[str, Any], where: str) -> list[tuple[str, Any, Any]]:
    """(key, base.yaml's value, the dataclass's default) for each key that has both."""
    found = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        kind, value = hints[f.name], data[f.name]
        if dataclasses.is_dataclass(kind) and isinstance(value, dict):
            found += _defaults_in_both(kind, value, f"{where}{f.name}.")  # type: ignore[arg-type]
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            continue  # base.yaml alone holds it
        found.append((f"{where}{f.name}", _coerce(value, kind, f.name), default))
    return found


def test_a_default_written_in_the_code_is_base_yamls() -> None:
    """conf/base.yaml sets every shipped default; a dataclass default for the same key (for
    code that builds a section by hand) must be the same value."""
    base = yaml.safe_load((REPO / "conf" / "base.yaml").read_text())
    both = _defaults_in_both(Settings, base, "")
    assert len(both) > 40  # the check does reach the sections
    disagree = [(key, yaml_value, code) for key, yaml_value, code in both if yaml_value != code]
    assert disagree == []
