"""Exponential decay of the margin multiplier gamma (paper section 3.5, decay rate 0.94)."""

import keras

DECAY_RATE = 0.94


def margin_multiplier_schedule(
    initial: float,
    decay_steps: int,
    decay_rate: float = DECAY_RATE,
    staircase: bool = True,
) -> keras.optimizers.schedules.ExponentialDecay:
    """gamma as a function of the training step.

    Formula:
    ```
    gamma(step) = initial * decay_rate ** floor(step / decay_steps)     (staircase)
    gamma(step) = initial * decay_rate ** (step / decay_steps)          (otherwise)
    ```
    The paper gives the rate (0.94) but not the interval; see BUILD_NOTES.md for the default.

    Args:
      initial: gamma at step 0, >= 0.
      decay_steps: steps between two decays, >= 1.
      decay_rate: factor per interval, in (0, 1].
      staircase: decay in whole intervals (as TF-slim's Inception recipe, where 0.94 comes from).

    Returns:
      A Keras schedule: call it with the step (int or int Tensor) for gamma (float32).

    Raises:
      ValueError: initial < 0, decay_steps < 1 or decay_rate outside (0, 1].
    """
    if not initial >= 0:
        raise ValueError(f"initial margin multiplier must be >= 0, got {initial!r}.")
    if int(decay_steps) != decay_steps or decay_steps < 1:
        raise ValueError(f"decay_steps must be an integer >= 1, got {decay_steps!r}.")
    if not 0.0 < decay_rate <= 1.0:
        raise ValueError(f"decay_rate must be in (0, 1], got {decay_rate!r}.")
    return keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=float(initial),
        decay_steps=int(decay_steps),
        decay_rate=float(decay_rate),
        staircase=staircase,
    )


def margin_multiplier_at(
    step: int, initial: float, decay_steps: int, decay_rate: float = DECAY_RATE
) -> float:
    """gamma at one step of the staircase schedule, as a Python float (for logs and configs)."""
    return float(margin_multiplier_schedule(initial, decay_steps, decay_rate)(step))
