"""Pages of the core app: the audit log and API tokens."""

from django.urls import path

from controlplane import views

app_name = "core"

urlpatterns = [
    path("audit/", views.audit, name="audit"),
    path("audit/chain/", views.audit_chain, name="audit-chain"),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/<int:pk>/revoke/", views.revoke_token, name="token-revoke"),
]
