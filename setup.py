"""Packaging for tensorboard_nnviz (the version lives in tensorboard_nnviz/version.py)."""

import os

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _panel_files():
    """Every file of the panel, its nested folders included (paths relative
    to frontend/, which ships as tensorboard_nnviz/frontend)."""
    root = os.path.join(HERE, "frontend")
    files = []
    for folder, _, names in os.walk(root):
        rel = os.path.relpath(folder, root)
        files += [os.path.normpath(os.path.join(rel, n)) for n in names
                  if n.endswith((".js", ".css", ".html", ".json", ".svg"))]
    return sorted(files)


def _version():
    scope = {}
    with open(os.path.join(HERE, "tensorboard_nnviz", "version.py")) as f:
        exec(f.read(), scope)
    return scope["__version__"]


# Keras 3 runs on TensorFlow, JAX or PyTorch; `[keras]` is Keras on TensorFlow,
# `[jax]` and `[torch]` install no TensorFlow. The test and demo extras name
# the CPU build of TensorFlow directly so that nothing pulls the full
# `tensorflow` wheel on top.
_TF_CPU = [
    "keras>=3.0",
    "tensorflow-cpu>=2.16; platform_machine=='x86_64'",
    "tensorflow>=2.16; platform_machine!='x86_64'",
]

# The recorders' one-pass stats kernel (record/fused.py); without numba they
# take the numpy path, slower (README, "Recording cost"). Not in
# install_requires: the plugin inside TensorBoard never uses it, and numba
# with llvmlite is about 45 MB to download, 200 MB installed.
_RECORD = ["numba>=0.59"]

_TEST_TOOLS = [
    "pytest>=7",
    "pytest-timeout>=2",
    "hypothesis>=6",
    "playwright>=1.40",
    "psutil>=5",
    # tests/test_browser_serving.py builds the wheel without build isolation
    # (no index needed); bdist_wheel is built in from 70.1.
    "setuptools>=70.1",
]

setup(
    name="tensorboard_nnviz",
    version=_version(),
    description="TensorBoard plugin: weight heatmaps that evolve across training steps",
    long_description=open(os.path.join(HERE, "README.md")).read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # The panel lives in frontend/ and ships as tensorboard_nnviz/frontend.
    packages=[
        "tensorboard_nnviz",
        "tensorboard_nnviz.core",
        "tensorboard_nnviz.record",
        "tensorboard_nnviz.serve",
        "tensorboard_nnviz.cli",
        "tensorboard_nnviz.frontend",
    ],
    package_dir={"tensorboard_nnviz.frontend": "frontend"},
    package_data={
        "tensorboard_nnviz.serve": ["http_api.md"],
        "tensorboard_nnviz.frontend": _panel_files(),
    },
    install_requires=[
        "tensorboard>=2.16",
        "numpy>=1.23",
        "werkzeug>=2.2",
        "protobuf>=3.19",
        # TensorBoard's event writer checksums records in pure Python, holding
        # the GIL; fast_crc.py swaps in this C implementation (the README,
        # "Checksums run in C").
        "google-crc32c>=1.5",
        # The writer's spectral stats run numpy's eigensolver beside training,
        # held to one BLAS thread: more threads take training's cores and
        # spin (the README, "Spectral stats").
        "threadpoolctl>=3.1",
        # JSON answers: a whole run's stats are millions of floats, which the
        # stdlib writes 14x slower (benchmarks/whole_run.py).
        "orjson>=3.9",
        # gzip of large answers (the map's stats: 15 MB of JSON) by ISA-L:
        # 3x faster than zlib at level 1, and smaller (the README, "Whole-run
        # answers").
        "isal>=1.6",
    ],
    extras_require={
        "keras": ["keras>=3.0", "tensorflow>=2.16"] + _RECORD,
        "jax": ["keras>=3.0", "jax[cpu]>=0.5.1"] + _RECORD,  # jax.distributed.is_initialized
        "torch": ["keras>=3.0", "torch>=2.1"] + _RECORD,
        "lightning": ["torch>=2.1", "lightning>=2.1"] + _RECORD,
        # The Trainer callback (transformers) and `watch` under Accelerate;
        # 4.46: the Trainer's optimizer-step events, Accelerate 1.1: what
        # transformers 5 needs.
        "transformers": ["torch>=2.1", "transformers>=4.46", "accelerate>=1.1"] + _RECORD,
        "export": ["matplotlib>=3.6", "pillow>=9"],
        "demo": _TF_CPU + ["scikit-learn>=1.2", "matplotlib>=3.6", "pillow>=9"] + _RECORD,
        "test": (_TF_CPU + ["scikit-learn>=1.2", "matplotlib>=3.6", "pillow>=9"] + _RECORD
                 + _TEST_TOOLS),
        # The JAX and torch test environments: no TensorFlow.
        "test-tools": _TEST_TOOLS,
    },
    entry_points={
        "tensorboard_plugins": ["nnviz = tensorboard_nnviz.plugin:NNVizLoader"],
        "console_scripts": ["nnviz = tensorboard_nnviz.cli:main"],
    },
    classifiers=[
        "Framework :: TensorFlow",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Visualization",
    ],
)
