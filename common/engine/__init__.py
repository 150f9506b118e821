"""Use-cases over volumes and storage: ``backup``, ``restore`` (with ``validate``),
``verify``, ``replace``, ``drill`` (with ``compare``) and the operations on one stored
backup (``stored``: labels, forget, copy). Each chooses the backup's ``Format`` once
(``formats.format_for`` / ``format_of``: portable archives or the native repository) and
never tests a format's name. Pure functions of their inputs (a DockerHost, a storage
Backend, a ProgressTracker, Settings); no database, no framework — ``common.jobs``
records their outcomes."""
