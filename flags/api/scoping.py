"""The base of views whose URL names an environment: a token bound to another one is refused there."""

from rest_framework.views import APIView


class EnvironmentFlagView(APIView):
    environment_url_kwarg = "env"
