"""fl_embed: Deep Metric Learning via Facility Location (Song et al., CVPR 2017) in TensorFlow/Keras."""

from pathlib import Path

from setuptools import find_packages, setup

# TensorFlow comes through an extra so users pick the build: `[cpu]` installs the small CPU-only
# wheel, `[gpu]` the CUDA build. A plain `pip install .` leaves an existing TensorFlow untouched.
TF_VERSION = "2.21.0"

setup(
    name="fl_embed",
    version="0.1.0",
    description="Deep metric learning via facility location: clustering loss, baselines, trainers.",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(
        include=["fl_embed", "fl_embed.*", "data_prep", "data_prep.*"]
    ),
    include_package_data=True,
    package_data={"data_prep": ["data/*"]},
    install_requires=[
        "numpy>=1.26",
        "scikit-learn>=1.3",
        "absl-py>=2.0",
        "tensorflow-datasets>=4.9.4",
        # TFDS 4.9.10 looks up a builder's source through it when preparing a data set.
        "importlib_resources>=6",
        # The t-SNE picture of experiments/compare.py (paper Figure 4); brings Pillow, which the
        # glyph renderer (data_prep.glyphs.render) uses.
        "matplotlib>=3.7",
        "pillow>=10",
        # The comparison's tuning (experiments/tuning.py): TPE search, trials kept in SQLite.
        "optuna>=3.4",
        # Confidence intervals and Welch's test (fl_embed.evaluation.statistics); scikit-learn
        # already depends on it.
        "scipy>=1.10",
        # One BLAS thread per block while `ranked_matches` runs a block per core; scikit-learn
        # already depends on it.
        "threadpoolctl>=3.1",
    ],
    extras_require={
        "cpu": [f"tensorflow-cpu=={TF_VERSION}"],
        "gpu": [f"tensorflow[and-cuda]=={TF_VERSION}"],
        # Exact kNN of the evaluation through faiss (the numpy fallback gives the same result).
        "faiss": ["faiss-cpu>=1.8"],
        # pytest-xdist: the suite runs on both cores (pytest.ini), one test file per worker.
        "test": ["pytest>=7", "pytest-xdist>=3.5", "ruff>=0.4", "faiss-cpu>=1.8"],
    },
)
