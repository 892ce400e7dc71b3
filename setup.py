"""What pyproject.toml cannot say in setuptools' stable keys: telemetry ingest's C speedups.

Optional: an install without a C compiler and Python's headers still works, and ingest then
runs its Python (telemetry/services/speedups.py says how the two are kept the same).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("telemetry._speedups", ["telemetry/_speedups.c"], optional=True)])
