"""Volume groups: the backups one group job made (a Compose project's volumes, or a named
set, within one stop window) share a ``group_id`` (NULL for a backup of its own)

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-06 20:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('backups', sa.Column('group_id', sa.String(length=32), nullable=True))
    op.create_index('ix_backups_group', 'backups', ['group_id'])


def downgrade() -> None:
    op.drop_index('ix_backups_group', table_name='backups')
    with op.batch_alter_table('backups') as batch:
        batch.drop_column('group_id')
