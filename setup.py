"""Package mapping that pyproject.toml alone cannot express.

The repository's fixed top-level folders (`edge/`, `hub/`, `hardware/`) are installed as
subpackages of one `checkpost` namespace, so the import names never clash with other
distributions that own a bare `hub` or `edge`. Everything else lives in pyproject.toml.
"""

from setuptools import find_packages, setup

ROOTS = {
    "checkpost": "checkpost",
    "checkpost.edge": "edge",
    "checkpost.hub": "hub",
    "checkpost.hardware": "hardware",
}

packages: list[str] = []
for name, folder in ROOTS.items():
    packages.append(name)
    packages.extend(f"{name}.{sub}" for sub in find_packages(folder))

setup(packages=packages, package_dir=ROOTS)
