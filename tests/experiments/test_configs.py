"""Tests of experiments/configs.py: one config per data set, the trainer's flags made from it."""

import dataclasses

import pytest
from absl import flags

from experiments import configs


@pytest.fixture
def flag_values():
    values = flags.FlagValues()
    configs.define_flags(values)
    return values


def test_every_setting_but_the_data_set_facts_is_a_flag(flag_values):
    names = {f.name for f in dataclasses.fields(configs.Config)}
    facts = {"dataset", "ks", "image_size", "resize_to", "channels"}
    assert set(configs.FLAG_FIELDS) == names - facts
    assert {"dataset", *configs.FLAG_FIELDS} <= set(flag_values)


def test_unset_flags_give_the_data_sets_config(flag_values):
    flag_values(["train", "--dataset=sop"])
    assert configs.from_flags(flag_values) == configs.get_config("sop")


def test_set_flags_override_the_config_and_none_weights_mean_random(flag_values):
    args = ["--dataset=cub200", "--batch_size=64", "--noaugment", "--weights=none"]
    flag_values(["train", *args, "--loss=npairs"])
    config = configs.from_flags(flag_values)
    expected = dataclasses.replace(
        configs.get_config("cub200"),
        batch_size=64,
        augment=False,
        weights=None,
        loss="npairs",
    )
    assert config == expected


@pytest.mark.parametrize("dataset", configs.DATASETS)
def test_the_flags_of_a_config_give_it_back(flag_values, dataset):
    config = dataclasses.replace(
        configs.get_config(dataset), seed=7, augment=False, cluster_loss_mode="local"
    )
    flag_values(["train", *configs.to_flags(config)])
    assert configs.from_flags(flag_values) == config


def test_a_stored_run_record_gives_the_config_back():
    config = configs.get_config("glyphs")
    record = {**dataclasses.asdict(config), "ks": [1, 2, 4, 8], "replicas": 2}
    assert configs.from_record(record) == config


def test_the_paper_values_are_the_defaults():
    config = configs.Config()
    assert (config.batch_size, config.embedding_dim, config.margin_decay_rate) == (
        128,
        64,
        0.94,
    )
    assert configs.get_config("sop").classes_per_batch_ratio == 0.75
    with pytest.raises(ValueError, match="cub200, cars196, sop, glyphs"):
        configs.get_config("mnist")


def test_every_loss_knob_is_a_setting_defaulting_to_the_loss_functions_own():
    import inspect

    from fl_embed.losses.registry import LOSSES

    config = configs.get_config("glyphs")
    for name, spec in LOSSES.items():
        parameters = inspect.signature(spec.fn).parameters
        for knob in spec.knobs:
            assert knob in configs.FLAG_FIELDS, (name, knob)
            if knob != "margin_multiplier":  # gamma's initial value is the config's own
                assert getattr(configs.Config(), knob) == parameters[knob].default
        assert configs.loss_knobs(dataclasses.replace(config, loss=name)).keys() == set(
            spec.knobs
        )


@pytest.mark.parametrize("value", ["1.0", "-0.1", "1.5"])
def test_a_validation_fraction_outside_0_1_is_a_usage_error(flag_values, value):
    with pytest.raises(flags.IllegalFlagValueError, match="validation_fraction"):
        flag_values(["train", f"--validation_fraction={value}"])


@pytest.mark.parametrize("flag", ["learning_rate", "margin_multiplier", "margin"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_non_finite_float_setting_is_a_usage_error(flag_values, flag, value):
    with pytest.raises(flags.IllegalFlagValueError, match="finite"):
        flag_values(["train", f"--{flag}={value}"])
