import json

from django.contrib.auth import views as auth_views
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from tests.oidc_provider import validators


@csrf_exempt
def misbehave(request: HttpRequest) -> HttpResponse:
    """Tests only: what the next ID tokens get wrong, and the claims of users."""
    body = json.loads(request.body or b"{}")
    validators.MODE["value"] = body.get("mode", "")
    for username, claims in body.get("claims", {}).items():
        validators.EXTRA_CLAIMS[username] = claims
    for username, password in body.get("users", {}).items():
        if not User.objects.filter(username=username).exists():
            User.objects.create_user(username, f"{username}@idp.example", password)
    return HttpResponse("ok")


urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("test/misbehave/", misbehave),
]
