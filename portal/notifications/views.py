"""The notifications page: subscriptions, the denial threshold, and the delivery log."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from notifications import services
from notifications.errors import WebhookConflict, WebhookInvalid
from notifications.models import Delivery, NotificationSettings, Webhook
from trustportal.access import Need, organization_for_user
from trustportal.models import Organization, Role

RECENT_DELIVERIES = 50


class SubscriptionForm(forms.Form):
    display_name = forms.CharField(label="Name", max_length=200)
    payload_url = forms.CharField(label="Payload URL (webhook)", max_length=2000, required=False)
    email = forms.EmailField(label="or e-mail address", required=False)
    secret = forms.CharField(
        label="Secret (signs webhook payloads)",
        max_length=500,
        required=False,
        widget=forms.PasswordInput,
    )
    filters = forms.CharField(
        label="Event types (comma-separated; empty for all)", max_length=2000, required=False
    )


class ThresholdForm(forms.Form):
    denial_threshold = forms.IntegerField(
        label="Alert when more exchanges than this are denied within 15 minutes (0: never)",
        min_value=0,
        max_value=1_000_000,
    )


def _page(request: HttpRequest, org: str) -> tuple[Organization, bool]:
    organization, role = organization_for_user(request.user, org, Need.READ_CONFIGURATION)
    return organization, role == Role.ADMIN


@login_required
@require_http_methods(["GET", "POST"])
def notifications_page(request: HttpRequest, org: str) -> HttpResponse:
    organization, is_admin = _page(request, org)
    config, _ = NotificationSettings.objects.get_or_create(organization=organization)
    form = SubscriptionForm()
    if request.method == "POST":
        if not is_admin:
            return HttpResponse("This needs an organization admin.", status=403)
        form = SubscriptionForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            values = {
                "displayName": data["display_name"],
                "payloadUrl": data["payload_url"],
                "email": data["email"],
                "filters": [f.strip() for f in data["filters"].split(",") if f.strip()],
            }
            if data["secret"]:
                values["secret"] = data["secret"]
            try:
                services.webhook_create(organization=organization, values=values)
            except (WebhookInvalid, WebhookConflict) as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, f"Notifications '{data['display_name']}' added.")
                return redirect("notifications:page", org=organization.login)
    webhooks = list(Webhook.objects.filter(organization=organization).order_by("name"))
    deliveries = (
        Delivery.objects.select_related("webhook")
        .filter(webhook__organization=organization)
        .order_by("-pk")[:RECENT_DELIVERIES]
    )
    return render(
        request,
        "notifications/page.html",
        {
            "organization": organization,
            "is_admin": is_admin,
            "section": "notifications",
            "webhooks": webhooks,
            "deliveries": deliveries,
            "form": form,
            "threshold_form": ThresholdForm(initial={"denial_threshold": config.denial_threshold}),
        },
    )


@login_required
@require_POST
def webhook_action(request: HttpRequest, org: str, name: str, action: str) -> HttpResponse:
    organization, is_admin = _page(request, org)
    if not is_admin:
        return HttpResponse("This needs an organization admin.", status=403)
    webhook = (
        Webhook.objects.select_related("organization")
        .filter(organization=organization, name=name)
        .first()
    )
    if webhook is None:
        return HttpResponse("No such subscription.", status=404)
    if action == "ping":
        row = services.deliver(
            webhook=webhook,
            kind="ping",
            audit_event=None,
            attempt=1,
            policy=services.webhook_policy(),
        )
        level = messages.SUCCESS if row.status == "delivered" else messages.ERROR
        messages.add_message(
            request,
            level,
            f"Ping to '{webhook.display_name}': {row.get_status_display()}"
            + (f" ({row.error})" if row.error else ""),
        )
    elif action == "delete":
        services.webhook_delete(webhook=webhook)
        messages.success(request, f"Notifications '{webhook.display_name}' removed.")
    elif action in ("activate", "deactivate"):
        services.webhook_update(webhook=webhook, values={"active": action == "activate"})
    else:
        return HttpResponse("Unknown action.", status=404)
    return redirect("notifications:page", org=organization.login)


@login_required
@require_POST
def threshold(request: HttpRequest, org: str) -> HttpResponse:
    organization, is_admin = _page(request, org)
    if not is_admin:
        return HttpResponse("This needs an organization admin.", status=403)
    form = ThresholdForm(request.POST)
    if form.is_valid():
        services.settings_update(
            organization=organization, denial_threshold=form.cleaned_data["denial_threshold"]
        )
        messages.success(request, "Denial alert threshold saved.")
    else:
        messages.error(request, "The threshold must be a whole number from 0.")
    return redirect("notifications:page", org=organization.login)
