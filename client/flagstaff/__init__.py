"""Flagstaff client: local resolution of Claude configs and Messages API request rendering."""
