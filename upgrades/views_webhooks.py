"""Webhook endpoints and their deliveries: global admins only. Glue: ``needs`` checks the
role, the services (upgrades/services/webhooks.py) check again, write and audit."""
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from .models import Webhook, WebhookDelivery, WebhookEvent
from .permissions import ADMINISTER, check_global_admin, needs
from .services import webhooks as service
from .views import get_or_404

DELIVERIES_SHOWN = 100


def _form(request):
    return {"url": request.POST.get("url", "")[:600], "events": request.POST.getlist("events"),
            "active": bool(request.POST.get("active")), "secret": request.POST.get("secret", "")}


def _no_store(response):
    response["Cache-Control"] = "no-store"  # may hold a secret shown once
    return response


@require_http_methods(["GET", "HEAD", "POST"])
@needs(ADMINISTER)
def webhook_list(request):
    """The endpoints with their deliveries' counts, and the form to register one."""
    check_global_admin(request.user, "manage webhooks")
    context = {"webhooks": Webhook.objects.all(), "events": WebhookEvent.choices,
               "form": {"url": "", "events": [], "secret": ""}, "errors": {}, "created": None}
    status = 200
    if request.method == "POST":
        form = _form(request)
        try:
            hook, secret = service.create_webhook(user=request.user, url=form["url"], events=form["events"],
                                                  secret=form["secret"])
        except ValidationError as exc:
            context.update(form={**form, "secret": ""}, errors=exc.message_dict)
            status = 400
        else:
            context["created"] = {"webhook": hook, "secret": secret}
    for hook in context["webhooks"]:
        hook.counts = {s: hook.deliveries.filter(status=s).count() for s in ("pending", "delivered", "failed")}
    return _no_store(render(request, "upgrades/webhooks.html", context, status=status))


@require_http_methods(["GET", "HEAD", "POST"])
@needs(ADMINISTER)
def webhook_detail(request, webhook_id):
    """Edit an endpoint (the secret is write-only: replaced, never shown again) and list its deliveries."""
    check_global_admin(request.user, "manage webhooks")
    hook = get_or_404(Webhook.objects.all(), webhook_id, "webhook")
    form = {"url": hook.url, "events": hook.events, "active": hook.active}
    context = {"webhook": hook, "events": WebhookEvent.choices, "errors": {}, "new_secret": None}
    status = 200
    if request.method == "POST":
        form = _form(request)
        replace = request.POST.get("replace_secret")
        try:
            context["new_secret"] = service.update_webhook(
                user=request.user, webhook=hook, url=form["url"], events=form["events"], active=form["active"],
                new_secret_value=form["secret"] if replace else None)
        except ValidationError as exc:
            context["errors"], status = exc.message_dict, 400
            hook.refresh_from_db()
        else:
            if context["new_secret"] is None:
                messages.success(request, "Webhook saved.")
                return redirect("webhook-detail", webhook_id=hook.pk)
    context["form"] = form
    context["deliveries"] = hook.deliveries.all()[:DELIVERIES_SHOWN]
    return _no_store(render(request, "upgrades/webhook_detail.html", context, status=status))


@require_POST
@needs(ADMINISTER)
def webhook_delete(request, webhook_id):
    check_global_admin(request.user, "manage webhooks")
    hook = get_or_404(Webhook.objects.all(), webhook_id, "webhook")
    url = hook.url
    service.delete_webhook(user=request.user, webhook=hook)
    messages.success(request, f"Webhook {url} removed, with its deliveries.")
    return redirect("webhooks")


@require_POST
@needs(ADMINISTER)
def delivery_resend(request, webhook_id, delivery_id):
    check_global_admin(request.user, "manage webhooks")
    delivery = get_or_404(WebhookDelivery.objects.filter(webhook_id=webhook_id).select_related("webhook"),
                          delivery_id, "delivery")
    try:
        service.redeliver(user=request.user, delivery=delivery)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Delivery #{delivery.pk} queued again.")
    return redirect("webhook-detail", webhook_id=webhook_id)
