"""experiments/tuning.py with a fake trial runner: the search space, the default as trial 0,
resuming, interrupted and failed trials, the choice."""

import json

import optuna
import pytest

from experiments import configs, tuning
from fl_embed.losses.registry import LOSSES

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize("loss", list(LOSSES))
def test_every_loss_searches_the_learning_rate_and_its_own_knobs(loss):
    space = tuning.search_space(loss, 300)
    names = [knob.name for knob in space]
    assert names[0] == "learning_rate"
    assert set(LOSSES[loss].knobs) <= set(names)
    # Every searched name is a setting of the trainer, and the glyph default is inside.
    config = configs.get_config("glyphs")
    for knob in space:
        assert knob.name in configs.FLAG_FIELDS
        assert knob.low <= getattr(config, knob.name) <= knob.high, knob


def test_a_loss_without_a_range_for_a_knob_is_refused(monkeypatch):
    spec = LOSSES["triplet"]
    monkeypatch.setitem(LOSSES, "triplet", spec._replace(knobs=("margin", "alpha")))
    with pytest.raises(ValueError, match="alpha"):
        tuning.search_space("triplet", 300)


def fake_score(setting):
    """A smooth validation score peaking at learning_rate = 3e-3, margin = 0.2."""
    import math

    return (
        1.0
        - (math.log10(setting["learning_rate"] / 3e-3)) ** 2
        - (setting["margin"] - 0.2) ** 2
    )


def storage(tmp_path):
    return f"sqlite:///{tmp_path / 'tuning.db'}"


def run_study(tmp_path, trials, run_trial, seed=0):
    space = tuning.search_space("triplet", 300)
    default = tuning.defaults(configs.get_config("glyphs"), space)
    study = tuning.open_study(storage(tmp_path), "triplet", seed, trials)
    tuning.tune(study, space, default, trials, run_trial)
    return study, space, default


def test_trial_0_is_the_default_and_the_best_trial_is_chosen(tmp_path):
    calls = []

    def run_trial(setting, number):
        calls.append((number, setting))
        return fake_score(setting)

    study, space, default = run_study(tmp_path, 6, run_trial)
    assert [n for n, _ in calls] == list(range(6))
    assert calls[0][1] == default
    best = tuning.chosen(study)
    assert best.value == max(fake_score(s) for _, s in calls)
    record = tuning.study_record(study, space)
    json.dumps(record)  # JSON as written to tuning.json
    assert len(record["trials"]) == 6 and record["chosen"]["number"] == best.number
    assert record["search_space"]["margin"]["low"] == 0.01


def test_ties_go_to_the_earliest_trial_so_the_default_wins_them(tmp_path):
    study, _, _ = run_study(tmp_path, 3, lambda setting, number: 0.5)
    assert tuning.chosen(study).number == 0


def test_a_rerun_resumes_and_runs_only_the_missing_trials(tmp_path):
    first = []
    run_study(tmp_path, 3, lambda s, n: first.append(n) or fake_score(s))
    second = []
    run_study(tmp_path, 5, lambda s, n: second.append(n) or fake_score(s))
    assert first == [0, 1, 2] and second == [3, 4]
    again = []
    run_study(tmp_path, 5, lambda s, n: again.append(n) or 0.0)
    assert again == []


def test_an_interrupted_trial_is_rerun_with_its_setting(tmp_path):
    class Killed(BaseException):
        pass

    seen = []

    def killed_at_trial_2(setting, number):
        seen.append(setting)
        if number == 2:
            raise Killed
        return fake_score(setting)

    with pytest.raises(Killed):
        run_study(tmp_path, 4, killed_at_trial_2)
    rerun = []
    study, _, _ = run_study(
        tmp_path, 4, lambda s, n: rerun.append((n, s)) or fake_score(s)
    )
    assert rerun[0][1] == seen[2]  # the killed setting, rerun first
    assert len(rerun) == 2  # it and trial 3: the interruption does not use the budget
    assert tuning._finished(study) == 4


def test_failed_trials_count_against_the_budget_and_are_never_chosen(tmp_path):
    def diverges_above_2e3(setting, number):
        if setting["learning_rate"] > 2e-3:
            raise tuning.TrialFailed("diverged")
        return fake_score(setting)

    study, space, _ = run_study(tmp_path, 6, diverges_above_2e3)
    assert tuning._finished(study) == 6
    record = tuning.study_record(study, space)
    failed = [t for t in record["trials"] if t["state"] == "FAIL"]
    assert all(t["error"] == "diverged" for t in failed)
    assert tuning.chosen(study).params["learning_rate"] <= 2e-3


def test_no_completed_trial_is_a_clear_error(tmp_path):
    def always_fails(setting, number):
        raise tuning.TrialFailed("nan")

    study, _, _ = run_study(tmp_path, 2, always_fails)
    with pytest.raises(ValueError, match="No trial of 'triplet' completed"):
        tuning.chosen(study)


def test_the_sampler_is_seeded(tmp_path):
    def draws(path, seed):
        got = []
        run_study(path, 5, lambda s, n: got.append(s) or fake_score(s), seed)
        return got

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "c").mkdir()
    assert draws(tmp_path / "a", 3) == draws(tmp_path / "b", 3)
    assert draws(tmp_path / "a", 3)[1:] != draws(tmp_path / "c", 4)[1:]
