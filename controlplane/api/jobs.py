"""What a worker asks of its control plane before it runs anything: the key the
control plane signs jobs with (sdk.signing), so it runs only jobs made here.
Behind the API token like every route: whoever holds the token may make calls
anyway; the key keeps out those who can only write to Redis."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import Schema, fields

from controlplane.api.blueprint import ApiBlueprint, services

blp = ApiBlueprint("jobs", __name__, description="What workers need")


class JobKeySchema(Schema):
    key = fields.String(required=True, metadata={"description": "the job-signing key (hex)"})


@blp.route("/jobs/key")
class JobKey(MethodView):
    @blp.response(200, JobKeySchema)
    def get(self):
        """The key the control plane signs jobs with; a worker checks every job it claims."""
        return {"key": services().job_key()}
