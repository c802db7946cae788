"""The schedule endpoints: workers register their workflow files' schedules; people
list them, pause and resume them, and trigger a call of one now."""

from __future__ import annotations

from flask.views import MethodView

from controlplane.api.answers import call_answer
from controlplane.api.blueprint import BODY_ERRORS, URI_TOO_LONG, ApiBlueprint, services
from controlplane.schemas import (
    CallSchema,
    RegisteredSchema,
    ScheduleRegistrationSchema,
    ScheduleSchema,
)

blp = ApiBlueprint("schedules", __name__, description="Schedules from workflow files")
#: A schedule's name in a path, as the API document shows it.
NAME = {"in": "path", "name": "name", "description": "the name of a schedule",
        "schema": {"type": "string", "pattern": r"^[\w.@-]{1,200}$"}}


@blp.route("/schedules")
class Schedules(MethodView):
    @blp.response(200, ScheduleSchema(many=True))
    def get(self):
        """Every schedule: its next and last fire, its last call's status, whether a
        worker still registers it, whether it is paused."""
        return services().schedules.listing()

    @blp.arguments(ScheduleRegistrationSchema())
    @blp.response(200, RegisteredSchema)
    @blp.refuses(*BODY_ERRORS)
    def post(self, registration):
        """Register a workflow file's schedules (workers do, every lease); one no
        worker registers for a few leases lapses."""
        services().schedules.register(registration["schedules"],
                                      (registration["repo_name"], registration["commit_hash"]))
        return {"registered": [schedule.name for schedule in registration["schedules"]]}


@blp.route("/schedules/<name>/pause", parameters=[NAME])
class SchedulePause(MethodView):
    @blp.response(200, ScheduleSchema)
    @blp.refuses(404, URI_TOO_LONG)
    def post(self, name):
        """Stop making calls of the schedule until it is resumed."""
        services().schedules.pause(name)
        return services().schedules.describe(name)


@blp.route("/schedules/<name>/resume", parameters=[NAME])
class ScheduleResume(MethodView):
    @blp.response(200, ScheduleSchema)
    @blp.refuses(404, URI_TOO_LONG)
    def post(self, name):
        """Make its calls again, from its next fire time on (fires while paused are not made)."""
        services().schedules.resume(name)
        return services().schedules.describe(name)


@blp.route("/schedules/<name>/trigger", parameters=[NAME])
class ScheduleTrigger(MethodView):
    @blp.response(201, CallSchema)
    @blp.refuses(404, URI_TOO_LONG)
    def post(self, name):
        """Make a call of the schedule now, besides its fires."""
        return call_answer(services().schedules.trigger(name), 201)
