from django.conf import settings
from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    # Browsers ask for /favicon.ico on pages that name no icon (the admin's).
    path(
        "favicon.ico",
        RedirectView.as_view(url=static("img/favicon.svg"), permanent=True),
    ),
    path("accounts/", include("accounts.urls")),
    path("admin/", admin.site.urls),
    path(settings.API_PATH, include("api.urls")),
    path("", include("filerequests.urls")),
    path("", include("sharing.urls")),
]
