from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from sharing import account_views

FORM_METHODS = ["get", "post", "head", "options"]

urlpatterns = [
    # Browsers ask for /favicon.ico on pages that name no icon (the admin's).
    path(
        "favicon.ico",
        RedirectView.as_view(url=static("img/favicon.svg"), permanent=True),
    ),
    path("accounts/login/", account_views.PortalLoginView.as_view(), name="login"),
    path("accounts/login/code/", account_views.login_otp, name="login_otp"),
    path("accounts/logout/", account_views.PortalLogoutView.as_view(), name="logout"),
    path("accounts/2fa/", account_views.two_factor, name="two_factor"),
    path("accounts/2fa/remove/", account_views.two_factor_remove, name="two_factor_remove"),
    path("accounts/signup/", account_views.signup, name="signup"),
    # Password change and reset by e-mail: Django's views, the site's templates. Only GET
    # and POST: Django's form views would otherwise treat PUT as a POST.
    *[
        path(f"accounts/{route}", view.as_view(http_method_names=FORM_METHODS), name=name)
        for route, view, name in (
            ("password_change/", auth_views.PasswordChangeView, "password_change"),
            # Links from SITE_URL, never the Host header; throttled per address and account.
            ("password_reset/", account_views.PortalPasswordResetView, "password_reset"),
            (
                "reset/<uidb64>/<token>/",
                auth_views.PasswordResetConfirmView,
                "password_reset_confirm",
            ),
        )
    ],
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("", include("sharing.urls")),
]
