"""Only what pyproject.toml cannot say: the presets live in the repository's top-level
``studies/`` and ship inside the package as ``hpsearch.studies`` (wheel and sdist), where
``hpsearch.space.presets.bundled_dir`` finds them."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["hpsearch", "hpsearch.*"]), "hpsearch.studies"],
    package_dir={"hpsearch.studies": "studies"},
)
