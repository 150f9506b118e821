"""Job kinds the catalog's lists treat apart (no SQLAlchemy import: the embedded read
commands use it through ``common.jobs.reads``)."""

#: kinds of quick helper jobs (a backup's directory listed for the console's tree) that
#: job lists leave out unless asked for by kind: they would bury the history
QUIET_KINDS = frozenset({"browse"})

#: the kind of a job on several volumes of a host (``common.jobs.groups``): its lock is
#: its own, its volumes are ``params["volumes"]``
GROUP_KIND = "group-backup"
