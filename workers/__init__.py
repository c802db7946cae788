"""callplane's worker: loads a workflow file and runs its stages' calls."""
