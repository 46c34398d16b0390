"""Token gauges read at scrape time (`trustportal.metrics.exposition`)."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tokens.models import AccessToken
from tokens.selectors import active_tokens_q


class ActiveTokensCollector(Collector):
    """Access tokens that are usable now (neither expired nor revoked), by type."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "trustportal_active_access_tokens",
            "Access tokens neither expired nor revoked, by type.",
            labels=["type"],
        )
        rows = (
            AccessToken.objects.filter(active_tokens_q(timezone.now()))
            .values_list("token_type")
            .annotate(count=Count("id"))
            .order_by("token_type")
        )
        for token_type, count in rows:
            family.add_metric([token_type], count)
        yield family
