"""Load a workflow file and find what it registered; resolve the code version it is."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sdk.decorators import Stage, WorkflowRunner
from sdk.errors import WorkflowFileError
from sdk.limits import StageLimit
from sdk.schedules import ScheduleDefinition


@dataclass(frozen=True)
class Workflow:
    path: Path
    runners: tuple[WorkflowRunner, ...]
    stages: dict[str, Stage]

    @property
    def limits(self) -> list[StageLimit]:
        """Its stages' limits (`@runner.stage(concurrency=..., rate=..., key=...)`)."""
        return [stage.limit for runner in self.runners for stage in runner.stages.values()
                if stage.limit is not None]

    @property
    def schedules(self) -> list[ScheduleDefinition]:
        """The schedules its runners define (`runner.schedule(...)`)."""
        return [schedule for runner in self.runners for schedule in runner.schedules.values()]


def load_workflow(path: str | Path) -> Workflow:
    """Import the file under a private module name (so its `__main__` block does not
    run) and collect the stages of every WorkflowRunner it defines."""
    path = Path(path).resolve()
    if not path.is_file():
        raise WorkflowFileError(f"workflow file {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"callplane_workflow_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # the file may import its neighbours
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise WorkflowFileError(f"workflow file {path} failed to import: {exc!r}") from exc
    runners = tuple(v for v in vars(module).values() if isinstance(v, WorkflowRunner))
    stages: dict[str, Stage] = {}
    for runner in runners:
        for name, stage in runner.stages.items():
            if name in stages:
                raise WorkflowFileError(f"{path}: two runners both register a stage named {name!r}")
            stages[name] = stage
    names = [schedule.name for runner in runners for schedule in runner.schedules.values()]
    if len(set(names)) < len(names):
        raise WorkflowFileError(f"{path}: two runners both define a schedule of the same name")
    if not stages:
        raise WorkflowFileError(
            f"workflow file {path} registers no stage: decorate functions with @runner.stage"
        )
    return Workflow(path, runners, stages)


def resolve_commit(workflow_file: str | Path, commit: str) -> str:
    """A git revision ('HEAD', a branch, a short hash) as the commit hash of the
    repository that holds the workflow file; a value git does not know (a label
    from a deploy pipeline, say) is taken as given, except HEAD, which must resolve."""
    folder = Path(workflow_file).resolve().parent
    try:
        completed = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--verify", f"{commit}^{{commit}}"],
            capture_output=True, text=True, check=False,
        )
    except FileNotFoundError:
        if commit != "HEAD":
            return commit
        raise WorkflowFileError(
            "--commit-hash HEAD: git is not installed; pass the commit hash itself"
        ) from None
    if completed.returncode == 0:
        return completed.stdout.strip()
    if commit != "HEAD":
        return commit
    raise WorkflowFileError(
        f"--commit-hash HEAD: {folder} is not in a git repository with a commit "
        f"({completed.stderr.strip()}); pass the commit hash itself"
    )
