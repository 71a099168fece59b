from django.urls import path

from sharing import views

app_name = "sharing"

urlpatterns = [
    path("", views.home, name="home"),
    path("files/upload/", views.upload, name="upload"),
    path("files/<uuid:file_id>/", views.file_detail, name="file_detail"),
    path("files/<uuid:file_id>/download/", views.download, name="download"),
    path("files/<uuid:file_id>/delete/", views.delete, name="delete"),
]
