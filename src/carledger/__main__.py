"""``python -m carledger`` is the ``carledger`` command."""

from carledger.cli.main import app

app()
