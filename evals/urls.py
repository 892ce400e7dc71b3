"""Pages of the evals app; controlplane/urls.py includes them."""

from django.urls import path

from evals.views import live_scores

app_name = "evals"

urlpatterns = [
    path("flags/<slug:key>/live-scores/", live_scores.flag_live_scores, name="live-scores"),
]
