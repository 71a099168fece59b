from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from sharing import account_views

urlpatterns = [
    path("accounts/login/", account_views.PortalLoginView.as_view(), name="login"),
    path("accounts/login/code/", account_views.login_otp, name="login_otp"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/2fa/", account_views.two_factor, name="two_factor"),
    path("accounts/2fa/remove/", account_views.two_factor_remove, name="two_factor_remove"),
    path("accounts/signup/", account_views.signup, name="signup"),
    # Password change and reset by e-mail: Django's views, the site's templates.
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("", include("sharing.urls")),
]
