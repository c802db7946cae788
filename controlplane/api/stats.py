"""The numbers to scale by (controlplane.metrics): `GET /api/stats` as JSON for
autoscalers and the web view, and `GET /metrics` for Prometheus."""

from __future__ import annotations

from flask import Blueprint, Response
from flask.views import MethodView
from prometheus_client import CONTENT_TYPE_LATEST

from controlplane.api.blueprint import ApiBlueprint, services
from controlplane.schemas.stats import StatsSchema
from controlplane.store import utcnow

blp = ApiBlueprint("stats", __name__, description="Backlog and throughput")
#: /metrics sits at the root, where scrapers look for it.
scrape = Blueprint("scrape", __name__)


@blp.route("/stats")
class Stats(MethodView):
    @blp.response(200, StatsSchema)
    def get(self):
        """The backlog per queue now (what an autoscaler of workers reads), calls
        delayed or held back by limits, workers alive, the recorder's lag, and the
        last hour's throughput and latency, minute by minute."""
        return services().metrics.stats(utcnow())


@scrape.route("/metrics")
def metrics():
    """Every figure in Prometheus' text format, the same from every control plane."""
    return Response(services().metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
