"""The comparison's hyper-parameter search: one Optuna study per loss, scored on validation classes.

"A Metric Learning Reality Check" (Musgrave et al., ECCV 2020) found that losses compared at
their authors' defaults mostly measure the defaults; each loss is tuned here the same way instead:
the learning rate and the loss's own knobs, by Optuna's seeded TPE sampler, every trial a training
run on the first train classes scored by MAP@R on the held-out last ones (`data_prep.
validation_split`). The test classes are never read while tuning.

The first trial of a study is the config's own setting (the untuned one), so tuning never picks a
setting worse on validation than the default. Trials are stored in SQLite: a rerun resumes the
finished ones; a trial killed while running is rerun with the same setting (its run directory
resumes from its last checkpoint).
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import optuna
from absl import logging

from experiments import configs
from fl_embed.losses.registry import get_loss

# The score a trial is chosen by (a key of `fl_embed.evaluation.evaluate`).
OBJECTIVE = "map@r"


class Knob(NamedTuple):
    """One searched setting: a `configs.Config` field and its range."""

    name: str
    low: float
    high: float
    log: bool = True
    integer: bool = False


def search_space(loss: str, train_steps: int) -> tuple[Knob, ...]:
    """The settings searched for `loss` in a run of `train_steps` steps.

    Every loss gets the learning rate; each its registry knobs: the clustering loss gamma's
    initial value (the paper does not give it) and its decay interval, the triplet and lifted
    margins (triplet on unit vectors, squared distances in [0, 4]; lifted on raw distances), the
    N-pairs lambda. Embedding size, batch size, C/m, steps and backbone stay the config's.

    Raises:
      ValueError: unknown loss, or a loss whose knobs have no range here.
    """
    spec = get_loss(loss)
    own = {
        "clustering": (
            Knob("margin_multiplier", 0.1, 1000.0),
            Knob(
                "margin_decay_steps",
                max(1, train_steps // 20),
                train_steps,
                integer=True,
            ),
        ),
        "triplet": (Knob("margin", 0.01, 1.0),),
        "lifted": (Knob("margin", 0.1, 10.0),),
        "npairs": (Knob("reg_lambda", 1e-4, 0.1),),
    }.get(loss, ())
    missing = set(spec.knobs) - {knob.name for knob in own}
    if missing:
        raise ValueError(
            f"Loss {loss!r} has knobs {sorted(missing)} without a search range: add them to "
            "experiments/tuning.py search_space."
        )
    return (Knob("learning_rate", 1e-4, 1e-2), *own)


def space_record(space: tuple[Knob, ...]) -> dict[str, dict[str, Any]]:
    """The search space as JSON: name -> {low, high, log, integer}."""
    return {knob.name: knob._asdict() for knob in space}


def defaults(config: configs.Config, space: tuple[Knob, ...]) -> dict[str, Any]:
    """The config's own value of every searched setting (the untuned run)."""
    return {knob.name: getattr(config, knob.name) for knob in space}


def suggest(trial: optuna.Trial, space: tuple[Knob, ...]) -> dict[str, Any]:
    """One setting drawn by the study's sampler."""
    drawn = {}
    for knob in space:
        if knob.integer:
            drawn[knob.name] = trial.suggest_int(
                knob.name, int(knob.low), int(knob.high), log=knob.log
            )
        else:
            drawn[knob.name] = trial.suggest_float(
                knob.name, knob.low, knob.high, log=knob.log
            )
    return drawn


def _inside(space: tuple[Knob, ...], setting: dict[str, Any]) -> bool:
    return all(knob.low <= setting[knob.name] <= knob.high for knob in space)


def open_study(storage: str, loss: str, seed: int, trials: int) -> optuna.Study:
    """The loss's study in `storage` (created, or loaded to resume), maximising the objective.

    TPE (seeded) draws the first half of the trials at random, then models the good ones.
    """
    sampler = optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=max(1, trials // 2)
    )
    return optuna.create_study(
        storage=storage,
        study_name=loss,
        direction="maximize",
        sampler=sampler,
        load_if_exists=True,
    )


class TrialFailed(Exception):
    """A trial's run ended without a score (e.g. it diverged); the study records it as failed."""


def tune(
    study: optuna.Study,
    space: tuple[Knob, ...],
    default: dict[str, Any],
    trials: int,
    run_trial: Callable[[dict[str, Any], int], float],
) -> None:
    """Runs the study until it holds `trials` finished trials (completed or failed).

    Args:
      study: from `open_study`.
      space: the loss's `search_space`.
      default: the config's setting, enqueued as the first trial of a new study.
      trials: finished trials wanted in all (a rerun runs only the missing ones).
      run_trial: (setting, trial number) -> validation score; raises `TrialFailed` for a run
        without a score.
    """
    states = optuna.trial.TrialState
    if not study.trials:
        if _inside(space, default):
            study.enqueue_trial(default)
        else:
            logging.warning(
                "%s: the default %s is outside the search space; trial 0 is drawn instead.",
                study.study_name,
                format_setting(default),
            )
    for stale in study.get_trials(deepcopy=False, states=(states.RUNNING,)):
        # Killed by an earlier interruption: rerun the same setting (its run dir resumes).
        study.tell(stale.number, state=states.FAIL)
        study.enqueue_trial(stale.params)
    while _finished(study) < trials:
        trial = study.ask()
        setting = suggest(trial, space)
        try:
            score = run_trial(setting, trial.number)
        except TrialFailed as err:
            trial.set_user_attr("error", str(err))
            study.tell(trial, state=states.FAIL)
            continue
        study.tell(trial, score)


def _finished(study: optuna.Study) -> int:
    """Trials that count against the budget: completed, or failed with an error of their own
    (a trial failed by an interruption is rerun instead)."""
    states = optuna.trial.TrialState
    return sum(
        t.state == states.COMPLETE
        or (t.state == states.FAIL and "error" in t.user_attrs)
        for t in study.get_trials(deepcopy=False)
    )


def chosen(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The completed trial of highest score, the earliest among equals (the default first).

    Raises:
      ValueError: no trial completed (every setting failed).
    """
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    if not done:
        raise ValueError(
            f"No trial of {study.study_name!r} completed; see tuning.json."
        )
    return max(done, key=lambda t: (t.value, -t.number))


def study_record(study: optuna.Study, space: tuple[Knob, ...]) -> dict[str, Any]:
    """A study as JSON: the space, every trial (parameters, score, state) and the chosen one."""
    trials = [
        {
            "number": t.number,
            "state": t.state.name,
            "params": t.params,
            OBJECTIVE: t.value,
            **({"error": t.user_attrs["error"]} if "error" in t.user_attrs else {}),
        }
        for t in study.trials
    ]
    best = chosen(study)
    return {
        "search_space": space_record(space),
        "objective": f"validation {OBJECTIVE}",
        "trials": trials,
        "chosen": {"number": best.number, "params": best.params, OBJECTIVE: best.value},
    }


def format_setting(setting: dict[str, Any]) -> str:
    """`learning_rate=0.00123, margin=0.31, margin_decay_steps=40` (3 significant digits)."""
    return ", ".join(
        f"{name}={value if isinstance(value, int) else format(value, '.3g')}"
        for name, value in setting.items()
    )
