"""`python -m controlplane`: serve the control plane (the same as `callplane server`)."""

from controlplane.cli import server

if __name__ == "__main__":
    server(prog_name="python -m controlplane")
