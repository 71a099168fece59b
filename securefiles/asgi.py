"""ASGI is not supported: use WSGI (gunicorn with securefiles.wsgi).

Django's ASGI handler copies every request body into a SpooledTemporaryFile before the
view runs, and bodies over FILE_UPLOAD_MAX_MEMORY_SIZE go to a temp file on disk: for an
upload, that is plaintext on a disk, which this portal never allows. Starting it fails
with this explanation instead.
"""

from django.core.exceptions import ImproperlyConfigured

raise ImproperlyConfigured(
    "securefiles does not run under ASGI: Django's ASGI handler spools request bodies "
    "(plaintext uploads) to temporary files. Serve securefiles.wsgi with gunicorn."
)
