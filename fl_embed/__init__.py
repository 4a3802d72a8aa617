"""fl_embed: Deep Metric Learning via Facility Location (Song, Jegelka, Rathod, Murphy, CVPR 2017)."""

try:
    import tensorflow as _tf  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the user's environment
    raise ImportError(
        "fl_embed needs TensorFlow. Install it with the build you want: "
        "`pip install fl_embed[cpu]` (CPU only) or `pip install fl_embed[gpu]` (CUDA)."
    ) from err

__version__ = "0.1.0"
