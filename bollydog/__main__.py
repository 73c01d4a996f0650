"""``python -m bollydog``: the ``bollydog`` command."""

from bollydog.cli.main import main

main()
