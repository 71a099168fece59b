from django.conf import settings
from django.urls import path

from sharing.views import files, links, resumable, shares, uploads

app_name = "sharing"

urlpatterns = [
    path("", files.home, name="home"),
    path("files/upload/", uploads.upload, name="upload"),
    path("files/uploads/", resumable.uploads, name="tus_uploads"),
    path("files/uploads/<uuid:upload_id>/", resumable.upload, name="tus_upload"),
    path("files/<uuid:file_id>/", files.file_detail, name="file_detail"),
    path("files/<uuid:file_id>/download/", files.download, name="download"),
    path("files/<uuid:file_id>/delete/", files.delete, name="delete"),
    path("files/<uuid:file_id>/shares/", shares.share_create, name="share_create"),
    path(
        "files/<uuid:file_id>/shares/<int:share_id>/revoke/",
        shares.share_revoke,
        name="share_revoke",
    ),
    path("files/<uuid:file_id>/links/", links.link_create, name="link_create"),
    path("files/<uuid:file_id>/links/<int:link_id>/revoke/", links.link_revoke, name="link_revoke"),
    path(f"{settings.LINK_PATH}<str:token>/", links.link, name="link"),
    path(f"{settings.LINK_PATH}<str:token>/download/", links.link_download, name="link_download"),
]
