"""/api/v1/: the API (django-ninja), its OpenAPI document and docs page, and the
descriptions of its problem types."""

from django.urls import path

from api import problems
from api.views import api

urlpatterns = [
    path("v1/problems/<slug:slug>", problems.describe, name="api_problem"),
    path("v1/", api.urls),
]
