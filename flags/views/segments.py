"""Segments: the list, a segment's page with the flags that use it, and deleting one."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from controlplane.errors import DomainError
from controlplane.models import Scope
from controlplane.web import HtmxHttpRequest, add_domain_error, require_scope, ui_actor
from flags import services
from flags.forms import SegmentCreateForm, SegmentForm
from flags.lookups import get_segment
from flags.models import FlagState, Segment
from flags.views.access import can_write
from flags.views.constraints import describe_constraint
from flags.views.json_text import pretty_json


@login_required
def segment_list(request: HtmxHttpRequest) -> HttpResponse:
    form = SegmentCreateForm(request.POST or None)
    if request.method == "POST":
        require_scope(request, Scope.WRITE)
        if form.is_valid():
            try:
                segment = services.create_segment(actor=ui_actor(request), **form.cleaned_data)
            except DomainError as error:
                add_domain_error(form, error)
            else:
                messages.success(request, f"Created segment '{segment.key}'. Rules can use it now.")
                return redirect("flags:segment", key=segment.key)
    usage = FlagState.objects.segment_usage()
    segments = [
        (segment, [describe_constraint(c) for c in segment.constraints], usage.get(segment.key, []))
        for segment in Segment.objects.order_by("key")
    ]
    context = {"segments": segments, "form": form, "can_write": can_write(request)}
    return render(request, "flags/segments.html", context)


@login_required
def segment_detail(request: HtmxHttpRequest, key: str) -> HttpResponse:
    segment = get_segment(key)
    initial = {
        "name": segment.name,
        "description": segment.description,
        "constraints": pretty_json(segment.constraints),
    }
    form = SegmentForm(request.POST or None, initial=initial)
    if request.method == "POST":
        require_scope(request, Scope.WRITE)
        if form.is_valid():
            try:
                services.update_segment(segment=segment, actor=ui_actor(request), **form.cleaned_data)
            except DomainError as error:
                add_domain_error(form, error)
            else:
                messages.success(request, f"Saved segment '{segment.key}'.")
                return redirect("flags:segment", key=segment.key)
    context = {
        "segment": segment,
        "described": [describe_constraint(c) for c in segment.constraints],
        "used_by": FlagState.objects.using_segment(segment.key),
        "form": form,
        "can_write": can_write(request),
    }
    return render(request, "flags/segment.html", context)


@login_required
@require_POST
def segment_delete(request: HttpRequest, key: str) -> HttpResponse:
    require_scope(request, Scope.WRITE)
    segment = get_segment(key)
    try:
        services.delete_segment(segment=segment, actor=ui_actor(request))
    except DomainError as error:
        messages.error(request, error.detail)
        return redirect("flags:segment", key=segment.key)
    messages.success(request, f"Deleted segment '{segment.key}'.")
    return redirect("flags:segments")
