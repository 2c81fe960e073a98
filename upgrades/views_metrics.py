"""``/metrics``: Prometheus' text, for a scraper with the metrics token or from an allowed address."""
from django.http import HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client.exposition import choose_encoder

from . import metrics as portal_metrics


@require_GET
def metrics(request):
    refused = portal_metrics.refusal(request)
    if refused is not None:
        response = HttpResponse(refused.message, status=refused.status, content_type="text/plain; charset=utf-8")
        if refused.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    # The library picks the format the scraper asks for: OpenMetrics, else Prometheus' text 0.0.4.
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(portal_metrics.REGISTRY), content_type=content_type)
