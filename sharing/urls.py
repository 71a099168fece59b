from django.urls import path

from sharing import views

app_name = "sharing"

urlpatterns = [
    path("", views.home, name="home"),
    path("files/upload/", views.upload, name="upload"),
    path("files/<uuid:file_id>/", views.file_detail, name="file_detail"),
    path("files/<uuid:file_id>/download/", views.download, name="download"),
    path("files/<uuid:file_id>/delete/", views.delete, name="delete"),
    path("files/<uuid:file_id>/shares/", views.share_create, name="share_create"),
    path(
        "files/<uuid:file_id>/shares/<int:share_id>/revoke/",
        views.share_revoke,
        name="share_revoke",
    ),
    path("files/<uuid:file_id>/links/", views.link_create, name="link_create"),
    path("files/<uuid:file_id>/links/<int:link_id>/revoke/", views.link_revoke, name="link_revoke"),
    path("s/<str:token>/", views.link, name="link"),
]
