"""Pages of the core app: the audit log, API tokens and users."""

from django.urls import path

from controlplane import views

app_name = "core"

urlpatterns = [
    path("audit/", views.audit, name="audit"),
    path("audit/chain/", views.audit_chain, name="audit-chain"),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/<int:pk>/revoke/", views.revoke_token, name="token-revoke"),
    path("users/", views.users, name="users"),
    path("users/<int:pk>/", views.user_detail, name="user"),
    path("users/<int:pk>/role/", views.user_role, name="user-role"),
    path("users/<int:pk>/deactivate/", views.user_active, {"active": False}, name="user-deactivate"),
    path("users/<int:pk>/reactivate/", views.user_active, {"active": True}, name="user-reactivate"),
]
