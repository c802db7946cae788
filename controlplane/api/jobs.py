"""Jobs and reports: the key the control plane signs jobs with (sdk.signing),
which a worker asks for before it runs anything, so it runs only jobs made
here (behind the API token like every route: whoever holds the token may make
calls anyway; the key keeps out those who can only write to Redis); and what
was set aside: reports the recorder could not apply, jobs workers refused."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import Schema, fields

from controlplane.api.blueprint import ApiBlueprint, services

blp = ApiBlueprint("jobs", __name__, description="Jobs and workers' reports")


class JobKeySchema(Schema):
    key = fields.String(required=True, metadata={"description": "the job-signing key (hex)"})


@blp.route("/jobs/key")
class JobKey(MethodView):
    @blp.response(200, JobKeySchema)
    def get(self):
        """The key the control plane signs jobs with; a worker checks every job it claims."""
        return {"key": services().job_key()}


class SetAsideSchema(Schema):
    reports = fields.Integer(required=True, metadata={
        "description": "workers' reports the recorder could not read or apply "
                       "(`callplane recorder dead-letters` lists them)"})
    jobs = fields.Integer(required=True, metadata={
        "description": "jobs workers refused to run: not created by the control plane "
                       "(each in its queue's failed registry, with the reason)"})


@blp.route("/set-aside")
class SetAside(MethodView):
    @blp.response(200, SetAsideSchema)
    def get(self):
        """What was set aside rather than recorded or run; both 0 while all is well."""
        transport = services().transport
        return {"reports": transport.events.set_aside_count(), "jobs": transport.queues.rejected()}
