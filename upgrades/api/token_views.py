"""Personal API tokens: the page (browser, session) and the same through the API."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers as drf
from rest_framework.exceptions import NotAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from ..permissions import is_global_admin
from . import serializers as s
from .views import FIELD_ERRORS
from .tokens import ApiToken, create_token, revoke_token


class TokenSerializer(drf.Serializer):
    id = drf.IntegerField()
    name = drf.CharField()
    owner = drf.CharField(source="user.username")
    hint = drf.CharField(help_text="The token's first characters after hep_.")
    state = drf.ChoiceField(choices=["active", "expired", "revoked"])
    created_at = drf.DateTimeField()
    last_used_at = drf.DateTimeField(allow_null=True)
    expires_at = drf.DateTimeField(allow_null=True)
    revoked_at = drf.DateTimeField(allow_null=True)


def visible_tokens(user):
    """One's own tokens; a global admin sees everyone's (to revoke them)."""
    tokens = ApiToken.objects.select_related("user", "revoked_by")
    return tokens if is_global_admin(user) else tokens.filter(user=user)


def days_from(raw):
    """The form's "expires in days": "" none, else an int (the service says if it is out of range)."""
    raw = (raw or "").strip()
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6:
        raise ValidationError({"expires_in_days": ["A whole number of days, or empty for no expiry."]})
    return int(raw)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def tokens_page(request):
    """List, create (the token shown once, on this answer only) and revoke."""
    created, status, typed = None, 200, {}
    errors = {}
    if request.method == "POST":
        typed = {"name": request.POST.get("name", "")[:200], "expires_in_days": request.POST.get("expires_in_days", "")}
        try:
            token, raw = create_token(user=request.user, name=request.POST.get("name", ""),
                                      days=days_from(request.POST.get("expires_in_days")))
        except ValidationError as exc:
            errors, status = exc.message_dict, 400
        else:
            created, typed = {"token": token, "raw": raw}, {}
    response = render(request, "upgrades/api_tokens.html", {
        "tokens": visible_tokens(request.user), "created": created, "errors": errors, "typed": typed,
        "sees_all": is_global_admin(request.user)}, status=status)
    response["Cache-Control"] = "no-store"  # the page may hold a token shown once
    return response


@login_required
@require_POST
def revoke_page(request, token_id):
    token = visible_tokens(request.user).filter(pk=token_id).first()
    if token is None:
        raise Http404(f"There is no token #{token_id} of yours.")
    revoke_token(token=token, user=request.user)
    messages.success(request, f"Token {token.name!r} of {token.user.username} revoked.")
    return redirect("api-tokens-page")


class TokenList(APIView):
    @extend_schema(responses={200: TokenSerializer(many=True), 401: s.ErrorSerializer, 403: s.ErrorSerializer})
    def get(self, request):
        """Your tokens (an admin: everyone's)."""
        if not request.user.is_authenticated:
            raise NotAuthenticated()
        return Response(TokenSerializer(visible_tokens(request.user), many=True).data)

    @extend_schema(request=s.TokenInput, responses={201: inline_serializer("NewToken", {
        "token": drf.CharField(help_text="Shown this once: only a hash is kept."),
        "details": TokenSerializer()}), 400: FIELD_ERRORS, 401: s.ErrorSerializer, 403: s.ErrorSerializer})
    def post(self, request):
        """Make a token for yourself."""
        if not request.user.is_authenticated:
            raise NotAuthenticated()
        data = s.TokenInput(data=request.data)
        data.is_valid(raise_exception=True)
        token, raw = create_token(user=request.user, name=data.validated_data["name"],
                                  days=data.validated_data["expires_in_days"])
        return Response({"token": raw, "details": TokenSerializer(token).data}, status=201)


class TokenRevoke(APIView):
    @extend_schema(request=None, responses={200: TokenSerializer, 401: s.ErrorSerializer, 403: s.ErrorSerializer,
                                            404: s.ErrorSerializer})
    def post(self, request, token_id):
        """Revoke your token (an admin: anyone's); at once, for every later call."""
        if not request.user.is_authenticated:
            raise NotAuthenticated()
        token = visible_tokens(request.user).filter(pk=token_id).first()
        if token is None:
            raise Http404(f"There is no token #{token_id} of yours.")
        token = revoke_token(token=token, user=request.user)
        return Response(TokenSerializer(token).data)
