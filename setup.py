"""Packaging for recformer-m2. CI pins torch==2.13.0 (CPU) before installing this (see scripts/install.sh)."""

from setuptools import find_packages, setup

setup(
    name="recformer-m2",
    version="0.1.0",
    description="Next-product recommendation from product text across languages (Amazon-M2, KDD Cup 2023)",
    packages=find_packages(include=["recformer_m2", "recformer_m2.*", "id_baselines", "id_baselines.*"]),
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.4",
        "transformers>=5.0",
        "sentencepiece>=0.2",
        "sacrebleu>=2.4",
        "deepspeed>=0.19",
        "peft>=0.10",
        "faiss-cpu>=1.8",
        "numpy>=1.26",
        "scipy>=1.11",
        "pandas>=2.1",
        "pyarrow>=15",
        "tqdm>=4.66",
        "matplotlib>=3.8",
        "scikit-learn>=1.4",
        "lightgbm>=4.5",
        "lightning>=2.2",
        "datasets>=3.0",
    ],
    extras_require={
        "gpu": ["faiss-gpu-cu12>=1.8"],
        "test": ["pytest>=8"],
    },
    entry_points={"console_scripts": ["recformer-m2=recformer_m2.cli:main"]},
)
