from django.urls import path

from filerequests.views import owner, visitor

app_name = "filerequests"

urlpatterns = [
    path("requests/", owner.request_list, name="list"),
    path("requests/<int:request_id>/", owner.request_detail, name="detail"),
    path("requests/<int:request_id>/revoke/", owner.request_revoke, name="revoke"),
    path("requests/<int:request_id>/email/", owner.request_email, name="email"),
    path("r/<str:token>/", visitor.visit, name="visit"),
    path("r/<str:token>/receipt/", visitor.receipt, name="receipt"),
    path("r/<str:token>/uploads/", visitor.tus_uploads, name="tus_uploads"),
    path("r/<str:token>/uploads/<uuid:upload_id>/", visitor.tus_upload, name="tus_upload"),
]
