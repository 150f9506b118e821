"""Code shared by the API and the workers, free of web and task frameworks.

Sub-packages: ``config`` (the one Settings object), ``errors`` (the exception tree),
``db`` (tables and queries), ``storage`` (backends behind one contract), ``archive``
(portable tar formats with manifests), ``docker`` (the Docker adapter), ``engine``
(backup and restore use-cases), ``jobs`` (job submission and dispatch contract) and
``progress`` (live progress events).
"""
