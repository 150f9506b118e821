"""Job kinds the catalog's lists treat apart (no SQLAlchemy import: the embedded read
commands use it through ``common.jobs.reads``)."""

#: kinds of quick helper jobs that job lists leave out unless asked for by kind: they
#: would bury the history — a backup's directory listed for the console's tree, and a
#: migration's probes (its checks on both hosts, "does the destination exist" before a
#: rollback), whose outcomes the migration's own record keeps
QUIET_KINDS = frozenset({"browse", "migration-check", "migration-exists"})

#: the kind of a job on several volumes of a host (``common.jobs.groups``): its lock is
#: its own, its volumes are ``params["volumes"]``
GROUP_KIND = "group-backup"
