"""Every write of the flags app: each validates, records its audit entry and bumps revisions.

- `environments`: creating environments, protecting them (changes then need a reason), and
  requiring four eyes there (`approvals`).
- `approvals`: four eyes: changes filed for an Approver other than the author, approved with
  the evidence shown, then applied.
- `flags`: creating, editing and archiving flags.
- `versions`: validating config content and storing it as a flag's next version.
- `publishing`: publishing a version in an environment, and enabling or disabling the flag there.
- `catalog`: syncing the model catalog, and refreshing it from the Models API.
- `segments`: creating, editing and deleting segments.
- `targeting`: the targeting rules of a flag in an environment.
- `splits`: setting and clearing the split that serves a candidate version to a share of units,
  or an experiment's arms (the baseline and up to three candidates) by weight.
- `guards`: what every write checks and locks first (key format, flag and state rows).
- `revisions`: bumping environment revisions and announcing them after commit.
"""

from flags.services.catalog import ModelsApiFailed, refresh_model_catalog, sync_model_catalog
from flags.services.environments import (
    create_environment,
    set_environment_protected,
    set_environment_requires_approval,
)
from flags.services.flags import archive_flag, create_flag, update_flag
from flags.services.publishing import publish_version, set_flag_enabled
from flags.services.segments import create_segment, delete_segment, update_segment
from flags.services.splits import clear_split, set_experiment_split, set_split
from flags.services.targeting import MAX_RULE_DESCRIPTION, add_rule, move_rule, remove_rule, update_rule
from flags.services.versions import NewVersion, create_version, validate_content

__all__ = [
    "MAX_RULE_DESCRIPTION",
    "ModelsApiFailed",
    "NewVersion",
    "add_rule",
    "archive_flag",
    "clear_split",
    "create_environment",
    "create_flag",
    "create_segment",
    "create_version",
    "delete_segment",
    "move_rule",
    "publish_version",
    "refresh_model_catalog",
    "remove_rule",
    "set_environment_protected",
    "set_environment_requires_approval",
    "set_experiment_split",
    "set_flag_enabled",
    "set_split",
    "sync_model_catalog",
    "update_flag",
    "update_rule",
    "update_segment",
    "validate_content",
]
