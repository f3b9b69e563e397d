"""``python -m carledger`` is the ``carledger`` command."""

from carledger.cli.main import app

if __name__ == "__main__":  # not when a worker process imports it as __mp_main__
    app()
