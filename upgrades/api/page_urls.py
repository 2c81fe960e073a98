from django.urls import path

from .. import converters  # noqa: F401
from . import token_views

urlpatterns = [
    path("", token_views.tokens_page, name="api-tokens-page"),
    path("<id:token_id>/revoke/", token_views.revoke_page, name="api-token-revoke-page"),
]
