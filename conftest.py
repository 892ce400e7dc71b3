"""Test-process defaults: settings demand a SECRET_KEY outside DEBUG, so tests bring their own."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")
