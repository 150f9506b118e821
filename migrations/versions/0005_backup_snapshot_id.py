"""backup snapshot_id: one meaning per catalog column

Repository backups kept their snapshot id in ``checksum``; it moves to the new
``snapshot_id`` column and their ``checksum`` becomes empty (it is an archive object's
sha256 only). Every row is kept.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 14:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_backups = sa.table('backups', sa.column('format', sa.String), sa.column('checksum', sa.String),
                    sa.column('snapshot_id', sa.String))


def upgrade() -> None:
    with op.batch_alter_table('backups', schema=None) as batch_op:
        batch_op.add_column(sa.Column('snapshot_id', sa.String(length=64), server_default='',
                                      nullable=False))
        batch_op.create_index('ix_backups_snapshot', ['target', 'snapshot_id'], unique=False)
    op.execute(_backups.update().where(_backups.c.format == 'repo')
               .values(snapshot_id=_backups.c.checksum, checksum=''))


def downgrade() -> None:
    op.execute(_backups.update().where(_backups.c.format == 'repo')
               .values(checksum=_backups.c.snapshot_id))
    with op.batch_alter_table('backups', schema=None) as batch_op:
        batch_op.drop_index('ix_backups_snapshot')
        batch_op.drop_column('snapshot_id')
