"""Hypothesis profiles for the whole suite.

`make test` runs the properties derandomised, so a CI run is reproducible and a landing is
never blocked by a draw no one can replay. `make fuzz` explores with fresh random seeds (and
more examples where a property does not set its own count); anything it finds becomes an
`@example` on the property.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("fuzz", derandomize=False, max_examples=1000, print_blob=True)
settings.load_profile(os.environ.get("CHECKPOST_HYPOTHESIS", "ci"))
