"""The limit endpoints: workers register their stages' limits; people see each
limit with its running and waiting calls per key."""

from __future__ import annotations

from flask.views import MethodView

from controlplane.api.blueprint import BODY_ERRORS, ApiBlueprint, services
from controlplane.schemas.limits import LimitRegistrationSchema, LimitSchema, LimitsRegisteredSchema

blp = ApiBlueprint("limits", __name__, description="Stages' concurrency and rate limits")


@blp.route("/limits")
class Limits(MethodView):
    @blp.response(200, LimitSchema(many=True))
    def get(self):
        """Every limited stage: its limits, and per key value its calls running and
        waiting (queued, or held back by the limit)."""
        return services().limits.listing()

    @blp.arguments(LimitRegistrationSchema())
    @blp.response(200, LimitsRegisteredSchema)
    @blp.refuses(*BODY_ERRORS)
    def post(self, registration):
        """Register a workflow file's stages' limits (workers do, every lease); one
        no worker registers for a few leases lapses."""
        services().limits.register(registration["limits"])
        return {"registered": [limit.stage for limit in registration["limits"]]}
