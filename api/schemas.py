"""Request and response schemas of the REST API. They live in ``common.jobs`` (inputs and
views) because the embedded CLI validates and shows exactly the same; this module only
names them for the routes."""

from common.jobs.inputs import (
    NAME,
    BackupIn,
    BackupPatch,
    CopyIn,
    DrillIn,
    Format,
    Input,
    KeyAddIn,
    PruneIn,
    RepairIn,
    RestoreIn,
    SnapshotsIn,
    TargetIn,
    TargetJobIn,
    TargetMigrateIn,
    VerifyIn,
)
from common.jobs.views import (
    BackupOut,
    CheckOut,
    ContainerOut,
    HostOut,
    JobOut,
    LabelOut,
    TargetOut,
    ValidationOut,
    VolumeOut,
)

__all__ = ["NAME", "BackupIn", "BackupOut", "BackupPatch", "CheckOut", "ContainerOut", "CopyIn",
           "DrillIn", "Format", "HostOut", "Input", "JobOut", "KeyAddIn", "LabelOut", "PruneIn",
           "RepairIn", "RestoreIn", "SnapshotsIn", "TargetIn", "TargetJobIn", "TargetMigrateIn",
           "TargetOut", "ValidationOut", "VerifyIn", "VolumeOut"]
