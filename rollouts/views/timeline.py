"""The auditor's timeline of a flag or an environment, read from the audit log."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse

from controlplane.models import Scope
from controlplane.views import change_rows, filtered_page
from controlplane.web import HtmxHttpRequest, render_page, require_scope
from rollouts.forms import TimelineForm
from rollouts.timeline import events


@login_required
def timeline(request: HtmxHttpRequest) -> HttpResponse:
    require_scope(request, Scope.AUDIT)
    form = TimelineForm(request.GET)
    page = filtered_page(request, form)
    context = {
        "form": form,
        "page": page,
        "events": [(event, change_rows(event.entry.changes)) for event in events(list(page))],
        "export_csv": form.export_query("csv"),
        "export_jsonl": form.export_query("jsonl"),
    }
    return render_page(request, "rollouts/timeline.html", context)
