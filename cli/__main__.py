"""``python -m cli`` runs the ``volkeeper`` command."""

from cli.main import main

main()
