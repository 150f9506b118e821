"""Use-cases over volumes, archives and storage: ``backup`` (volume → archive object +
manifest) and ``restore`` (archive object → new or empty volume). Pure functions of their
inputs (a DockerHost, a storage Backend, a ProgressTracker, Settings); no database, no
framework — ``common.jobs`` records their outcomes."""
