"""Everything is declared in pyproject.toml except the package list, which setuptools cannot both
find and extend there: the packages under edgebrain/, plus ``edgebrain.device_profiles``, the one copy
of the device profiles (``devices/``, mapped by ``[tool.setuptools.package-dir]``)."""

from setuptools import find_namespace_packages, setup

setup(packages=find_namespace_packages(include=["edgebrain*"]) + ["edgebrain.device_profiles"])
