"""Flagstaff control plane: project package and core app."""

from controlplane.celery import app as celery_app

__all__ = ["celery_app"]
