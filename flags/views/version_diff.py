"""The diff page: two versions of a flag compared by kind of change, field, prompt and collection."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import zip_longest
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.utils import timezone

from controlplane.textdiff import word_diff
from flags.diff import CollectionDiff, ConfigDiff, DiffLine, diff_configs
from flags.lookups import get_flag, get_version
from flags.models import ClaudeModel, ConfigVersion
from flags.views.catalog import model_row
from flags.views.json_text import pretty_json
from flags.views.versions import version_number_param

KIND_LABELS = {
    "model_swap": "Model swap",
    "prompt_edit": "Prompt edit",
    "tool_set_change": "Tool set change",
    "mcp_change": "MCP change",
    "subagent_change": "Subagent change",
    "parameter_change": "Parameter change",
    "cache_prefix_changed": "Cache prefix changed",
    "no_change": "No change",
}


def _shown(value: Any) -> str:
    """A diff value as text; the diff uses None for a value that is absent."""
    if value is None:
        return "(absent)"
    return value if isinstance(value, str) else pretty_json(value)


def _side_by_side(lines: Iterable[DiffLine]) -> list[tuple[DiffLine | None, DiffLine | None]]:
    """Pair each change's deleted lines with its inserted ones, row by row, for two columns."""
    rows: list[tuple[DiffLine | None, DiffLine | None]] = []
    deleted: list[DiffLine] = []
    inserted: list[DiffLine] = []
    for line in lines:
        if line.op == "equal" or (line.op == "delete" and inserted):
            rows.extend(zip_longest(deleted, inserted))
            deleted, inserted = [], []
        if line.op == "equal":
            rows.append((line, line))
        else:
            (deleted if line.op == "delete" else inserted).append(line)
    rows.extend(zip_longest(deleted, inserted))
    return rows


def _with_words(left: DiffLine | None, right: DiffLine | None) -> dict[str, Any]:
    """A side-by-side row; a changed line facing its replacement gets its words marked."""
    runs = word_diff(left.text, right.text) if left and right and left.op != "equal" else ([], [])
    return {"left": left, "right": right, "left_runs": runs[0], "right_runs": runs[1]}


def _model_swap(diff: ConfigDiff) -> list[dict[str, Any]] | None:
    """The old and the new model with their catalog facts, when the diff swaps the model."""
    change = next((change for change in diff.changes if change.path == "model"), None)
    if change is None:
        return None
    today = timezone.now().date()
    # A config may name a model by an alias, which only the rows themselves list.
    catalog = {
        name: model
        for model in ClaudeModel.objects.with_prices()
        for name in (model.model_id, *model.aliases)
    }
    return [
        {"id": model_id, "row": model_row(catalog[model_id], today) if model_id in catalog else None}
        for model_id in (change.old, change.new)
    ]


def _diff_context(old: ConfigVersion, new: ConfigVersion) -> dict[str, Any]:
    diff = diff_configs(old.content, new.content)
    return {
        "old": old,
        "new": new,
        "diff": diff,
        # The model swap leads: it changes cost, latency and behaviour all at once.
        "kinds": [
            (kind, KIND_LABELS.get(kind, kind))
            for kind in sorted(diff.kinds, key=lambda kind: kind != "model_swap")
        ],
        "model_swap": _model_swap(diff),
        "field_changes": [(change.path, _shown(change.old), _shown(change.new)) for change in diff.changes],
        "system_rows": [_with_words(left, right) for left, right in _side_by_side(diff.system)],
        "collections": [
            _collection("Tools", diff.tools),
            _collection("MCP servers", diff.mcp_servers),
            _collection("Subagents", diff.subagents),
        ],
    }


def _collection(label: str, collection: CollectionDiff) -> dict[str, Any]:
    return {
        "label": label,
        "changed_at_all": bool(collection),
        "added": collection.added,
        "removed": collection.removed,
        "changed": [
            (item.name, [(change.path, _shown(change.old), _shown(change.new)) for change in item.changes])
            for item in collection.changed
        ],
        "reordered": collection.reordered,
    }


def _compared(query: QueryDict) -> tuple[int, int] | None:
    old, new = version_number_param(query.get("from")), version_number_param(query.get("to"))
    return (old, new) if old is not None and new is not None else None


@login_required
def diff(request: HttpRequest, key: str) -> HttpResponse:
    flag = get_flag(key)
    compared = _compared(request.GET)
    context: dict[str, Any] = {
        "flag": flag,
        "versions": ConfigVersion.objects.for_flag(flag).only("number", "message"),
        "compared": compared,
    }
    if compared is not None:
        context.update(_diff_context(get_version(flag, compared[0]), get_version(flag, compared[1])))
    return render(request, "flags/diff.html", context)
