"""`python -m sdk.worker ...`: the seed's way to start a worker (see workers.main)."""

from workers.main import worker

if __name__ == "__main__":
    worker()
