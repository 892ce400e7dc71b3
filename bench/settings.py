"""Settings for the HTTP benchmarks: the project's own, plus a trivial view for comparison."""

from controlplane.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
