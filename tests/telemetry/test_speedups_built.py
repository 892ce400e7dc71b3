"""The install builds telemetry ingest's C speedups (setup.py): without them ingest is slower
and bench/bench_ingest.py's figures are not the product's, and test_speedups.py skips."""

from telemetry.services.speedups import speedups


def test_speedups__installed__built_and_loaded():
    assert speedups is not None, (
        "telemetry/_speedups.c is not built: the install needs a C compiler and Python's headers "
        "(`.venv/bin/pip install -v -e .` shows why it was not built)"
    )
