"""The settings layer: parameters in, every config out, every problem at once."""

from __future__ import annotations

import re
from dataclasses import fields

import pytest

from components.core import settings
from components.core.errors import ConfigError
from components.core.evaluation.gate import GatePolicy
from components.core.settings import Settings, build, coerce, defaults, parameters
from components.core.training.config import TrainConfig


def test_every_config_field_is_one_parameter_with_a_comment():
    table = parameters()
    names = [f.name for config in settings.CONFIGS for f in fields(config)]
    assert len(names) == len(set(names)) == len(table)
    for p in table.values():
        assert p.help, f"{p.config.__name__}.{p.name} has no comment"
        assert p.kind in (int, float, bool, str)


@pytest.mark.parametrize(
    ("value", "kind", "want"),
    [
        (28.0, int, 28),  # what a compiled spec stores for an int default
        ("28", int, 28),
        ("28.0", int, 28),
        (3, float, 3.0),
        ("0.05", float, 0.05),
        ("yes", bool, True),
        ("False", bool, False),
        (7, str, "7"),
    ],
)
def test_values_are_coerced_to_the_declared_type(value, kind, want):
    got = coerce("x", value, kind)
    assert got == want and type(got) is kind


@pytest.mark.parametrize(
    ("value", "kind", "message"),
    [
        (28.5, int, "parameter x=28.5: expected a whole number"),
        ("ten", int, "parameter x='ten': expected a whole number"),
        (True, int, "expected a whole number"),
        ("nan", float, None),  # a float NaN is a number; the configs decide if it is valid
        ("maybe", bool, "parameter x='maybe': expected true or false"),
        ("abc", float, "parameter x='abc': expected a number"),
    ],
)
def test_bad_values_name_the_parameter(value, kind, message):
    if message is None:
        coerce("x", value, kind)
        return
    with pytest.raises(ConfigError, match=message):
        coerce("x", value, kind)


def test_defaults_build_the_default_configs_and_round_trip():
    s = Settings.from_params(defaults())
    assert s.train == TrainConfig() and s.gate == GatePolicy()
    assert s.to_params() == defaults()
    # the compiled spec hands back floats for integers: still the same settings
    floats = {k: float(v) if type(v) is int else v for k, v in defaults().items()}
    assert Settings.from_params(floats) == s
    assert isinstance(Settings.from_params(floats).source.image_size, int)


def test_list_parameters_are_parsed():
    s = Settings.from_params(
        {
            "hidden_sizes": "64, 32",
            "primary_metrics": "accuracy, auc",
            "guardrails": "log_loss:0.05,macro_f1",
            "feature_columns": "a, b",
        }
    )
    assert s.train.hidden_sizes == (64, 32)
    assert s.gate.primary_metrics == ("accuracy", "auc")
    assert s.gate.guardrails == (("log_loss", 0.05), ("macro_f1", 0.0))
    assert s.features.feature_columns == ("a", "b")
    assert s.to_params()["guardrails"] == "log_loss:0.05,macro_f1:0"


def test_every_problem_is_reported_at_once_in_one_line():
    with pytest.raises(ConfigError) as info:
        Settings.from_params(
            {
                "train_fraction": 0.9,
                "val_fraction": 0.5,
                "canary_percent": 0,
                "baseline": "nonsense",
                "max_epoch": 5,
                "hidden_sizes": "wide",
                "alpha": 2,
            }
        )
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("invalid settings: ")
    for part in (
        "parameter 'max_epoch' is not a pipeline parameter (did you mean max_epochs?)",
        "split fractions train=0.9 val=0.5",
        "canary_percent=0 must be 1-100",
        "baseline='nonsense' must be one of majority, logistic",
        "alpha=2.0 must be between 0 and 1",
        "parameter hidden_sizes='wide': expected whole numbers separated by commas, e.g. 256,128",
    ):
        assert part in text


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        ({"alpha": 0.0}, "alpha=0.0 must be between 0 and 1"),
        ({"primary_metrics": "f2"}, "primary metric 'f2'"),
        ({"guardrails": "log_loss:abc"}, "parameter guardrails='log_loss:abc': expected name:"),
        ({"guardrails": "nope:0.1"}, "guardrail nope"),
        ({"margin": -0.1}, "margin=-0.1 must be >= 0"),
        ({"accuracy_floor": 1.0}, "accuracy_floor=1.0 must be in [0, 1)"),
        ({"mcnemar_method": "fisher"}, "mcnemar_method='fisher' must be one of exact, midp"),
        ({"bootstrap_resamples": 10}, "bootstrap_resamples=10 must be >= 100"),
        ({"image_size": 0}, "image_size=0 must be 1-1024"),
        ({"model_name": "bad name"}, "model name 'bad name'"),
        ({"id_columns": "a", "feature_columns": "a,b"}, "both name a"),
    ],
)
def test_each_config_checks_its_fields(params, pattern):
    with pytest.raises(ConfigError, match=re.escape(pattern)):
        Settings.from_params(params)


def test_build_takes_its_own_fields_and_ignores_the_rest():
    config = build(TrainConfig, {"max_epochs": 5.0, "alpha": 0.01, "dataset": object()})
    assert config == TrainConfig(max_epochs=5) and type(config.max_epochs) is int
    with pytest.raises(ConfigError, match=re.escape("max_epochs=-1 must be >= 1 (0 = from")):
        build(TrainConfig, {"max_epochs": -1})


def test_auc_needs_two_classes():
    GatePolicy(primary_metrics=("auc",)).check_classes(2)
    with pytest.raises(ConfigError, match="ROC AUC needs a binary label and the data has 10"):
        GatePolicy(primary_metrics=("auc",)).check_classes(10)
    with pytest.raises(ConfigError, match="ROC AUC"):
        GatePolicy(guardrails=(("auc", 0.01),)).check_classes(3)
