"""Types for annotations: the user model, and the request a logged-in view receives.

The portal keeps Django's own user model (settings.py sets no AUTH_USER_MODEL), so the
type of get_user_model() and of every foreign key to settings.AUTH_USER_MODEL is
django.contrib.auth.models.User: annotations name it from here.
"""

from django.contrib.auth.models import User
from django.http import HttpRequest

__all__ = ["AuthenticatedHttpRequest", "User"]


class AuthenticatedHttpRequest(HttpRequest):
    """An HttpRequest whose user is signed in: what a view behind @login_required gets.

    Only for annotations (Django never makes one): it tells the type checker that
    request.user is a User there, not an AnonymousUser.
    """

    user: User
