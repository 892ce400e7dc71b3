"""Validation of config content against its JSON Schema and the model catalog (pure Python, no Django)."""

from flags.validation.catalog import (
    SEED_PATH,
    ModelInfo,
    ModelPrice,
    catalog_by_id,
    is_unpinned_alias,
    load_seed,
    unpinned_alias_message,
)
from flags.validation.issues import Issue, ValidationResult
from flags.validation.rules import SURFACES, validate_config
from flags.validation.schema import CONFIG_SCHEMA

__all__ = [
    "CONFIG_SCHEMA",
    "SEED_PATH",
    "SURFACES",
    "Issue",
    "ModelInfo",
    "ModelPrice",
    "ValidationResult",
    "catalog_by_id",
    "is_unpinned_alias",
    "load_seed",
    "unpinned_alias_message",
    "validate_config",
]
