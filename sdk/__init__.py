"""What user code imports: `from sdk.decorators import WorkflowRunner`."""
