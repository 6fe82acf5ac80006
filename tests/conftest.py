"""Shared fixtures live in ``tests/fixtures/``; each file there is a pytest plugin.

Hypothesis runs without a deadline (this machine is shared: a slow example is not a bug)
and without its "explain" phase, which traces every line under Python 3.11 and can turn one
failing property into an hour of shrinking. In CI (``CI`` set) it is derandomized, so CI
runs the same examples every time; a failure prints the blob that reproduces it.
"""

import os

from hypothesis import Phase, settings

_PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]
settings.register_profile("dev", deadline=None, phases=_PHASES, print_blob=True)
settings.register_profile(
    "ci", deadline=None, phases=_PHASES, print_blob=True, derandomize=True, database=None
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

pytest_plugins = [
    "tests.fixtures.redis",
    "tests.fixtures.sandbox",
    "tests.fixtures.logs",
    "tests.fixtures.pipeline",
]
