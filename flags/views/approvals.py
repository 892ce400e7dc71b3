"""The Approvals page: the changes waiting for an Approver other than their author, each with the
evidence an Approver decides on (gate verdict, deploy checklist, latest decision), and the
decisions taken, with who took them and why."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from controlplane.errors import DomainError
from controlplane.models import Scope
from controlplane.roles import scopes_for_user
from controlplane.web import HtmxHttpRequest, render_page, require_scope, ui_actor
from flags.api.approvals import get_approval
from flags.models import Approval
from flags.services import approvals

RECENT = 50


def _shown(approval: Approval) -> dict[str, Any]:
    try:
        return approvals.evidence_for(approval)
    except DomainError as error:
        return {"unavailable": error.detail}


@login_required
def approval_list(request: HtmxHttpRequest) -> HttpResponse:
    found = Approval.objects.select_related("flag", "environment")
    pending = [(approval, _shown(approval)) for approval in found.pending().order_by("created_at")]
    decided = found.exclude(state="pending").order_by("-decided_at")[:RECENT]
    context = {
        "pending": pending,
        "decided": decided,
        "can_approve": Scope.APPROVE in scopes_for_user(request.user),
        "me": request.user.get_username(),
    }
    return render_page(request, "flags/approvals.html", context)


@login_required
@require_POST
def approval_decide(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    require_scope(request, Scope.APPROVE)
    approval, reason = get_approval(pk), request.POST.get("reason", "").strip()
    decision = request.POST.get("decision")
    try:
        if decision == "approve":
            approvals.approve(approval=approval, actor=ui_actor(request), reason=reason)
            messages.success(request, f"Approved and applied: {approval.summary}.")
        elif decision == "reject":
            approvals.reject(approval=approval, actor=ui_actor(request), reason=reason)
            messages.success(request, f"Rejected: {approval.summary}.")
        else:
            messages.error(request, "Choose Approve or Reject.")
    except DomainError as refused:
        messages.error(request, refused.detail)
    return redirect("flags:approvals")
