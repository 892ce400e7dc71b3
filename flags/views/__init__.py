"""Pages of the flags app (HTML/htmx function-based views), one submodule per part:

- `flags`: the flag list, creating flags and environments, a flag's page, publishing, enabling.
- `versions`: the version editor and a version's page.
- `version_diff`: the diff page between two versions.
- `catalog`: the model catalog page.
- `targeting_section`: a flag's targeting per environment: rules, the split, trying a context.
- `segments`: the segment list and pages.
- `constraints`: constraints as phrases, shared by targeting and segments.
- `access`: the write-access checks the pages share.
- `json_text`: JSON values as indented text.
"""

from flags.views.catalog import LIFECYCLE_ORDER, PRICE_COLUMNS, model_catalog
from flags.views.constraints import OPERATOR_WORDS, describe_constraint
from flags.views.flags import environment_create, flag_detail, flag_list, publish, set_enabled
from flags.views.segments import segment_delete, segment_detail, segment_list
from flags.views.targeting import (
    rule_add,
    rule_move,
    rule_remove,
    split_clear,
    split_set,
    targeting,
    targeting_sections,
    try_context_view,
)
from flags.views.version_diff import KIND_LABELS, diff
from flags.views.versions import version_detail, version_new

__all__ = [
    "KIND_LABELS",
    "LIFECYCLE_ORDER",
    "OPERATOR_WORDS",
    "PRICE_COLUMNS",
    "describe_constraint",
    "diff",
    "environment_create",
    "flag_detail",
    "flag_list",
    "model_catalog",
    "publish",
    "rule_add",
    "rule_move",
    "rule_remove",
    "segment_delete",
    "segment_detail",
    "segment_list",
    "set_enabled",
    "split_clear",
    "split_set",
    "targeting",
    "targeting_sections",
    "try_context_view",
    "version_detail",
    "version_new",
]
