"""``python -m workers --host NAME``: the worker of one Docker host (``workers.worker``)."""

from workers.worker import main

main()
