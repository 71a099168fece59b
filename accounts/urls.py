"""URLs under /accounts/. Names are not namespaced ("login", "two_factor"): Django's auth
views and templates, and the settings LOGIN_URL, refer to them by these names."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts import oidc, passkey_views, views

FORM_METHODS = ["get", "post", "head", "options"]

urlpatterns = [
    path("login/", views.PortalLoginView.as_view(), name="login"),
    path("login/code/", views.login_otp, name="login_otp"),
    path("logout/", views.PortalLogoutView.as_view(), name="logout"),
    path("2fa/", views.two_factor, name="two_factor"),
    path("2fa/remove/", views.two_factor_remove, name="two_factor_remove"),
    path("signup/", views.signup, name="signup"),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/<int:token_id>/revoke/", views.token_revoke, name="token_revoke"),
    path("passkeys/", passkey_views.passkey_list, name="passkeys"),
    path(
        "passkeys/register/options/",
        passkey_views.passkey_register_options,
        name="passkey_register_options",
    ),
    path("passkeys/register/", passkey_views.passkey_register, name="passkey_register"),
    path(
        "passkeys/authenticate/options/",
        passkey_views.passkey_auth_options,
        name="passkey_auth_options",
    ),
    path("passkeys/authenticate/", passkey_views.passkey_auth, name="passkey_auth"),
    path("passkeys/<int:passkey_id>/rename/", passkey_views.passkey_rename, name="passkey_rename"),
    path("passkeys/<int:passkey_id>/remove/", passkey_views.passkey_remove, name="passkey_remove"),
    # Single sign-on (404 unless configured); mozilla-django-oidc's URL names.
    path("oidc/authenticate/", oidc.SSOLoginView.as_view(), name="oidc_authentication_init"),
    path("oidc/callback/", oidc.SSOCallbackView.as_view(), name="oidc_authentication_callback"),
    path("invitation/accept/", views.invitation_accept, name="invitation_accept"),
    path("invitation/<str:token>/", views.invitation, name="invitation"),
    # Password change and reset by e-mail: Django's views, the site's templates. Only GET
    # and POST: Django's form views would otherwise treat PUT as a POST.
    *[
        path(route, view.as_view(http_method_names=FORM_METHODS), name=name)
        for route, view, name in (
            ("password_change/", auth_views.PasswordChangeView, "password_change"),
            # Links from SITE_URL, never the Host header; throttled per address and account.
            ("password_reset/", views.PortalPasswordResetView, "password_reset"),
            (
                "reset/<uidb64>/<token>/",
                auth_views.PasswordResetConfirmView,
                "password_reset_confirm",
            ),
        )
    ],
    path("", include("django.contrib.auth.urls")),
]
