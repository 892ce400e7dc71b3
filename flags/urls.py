from django.urls import path

app_name = "flags"

urlpatterns: list = []
