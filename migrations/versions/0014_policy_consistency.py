"""Policy consistency: how a policy's backups are made consistent — stop the containers
(``stop_containers``), leave out paths (``excludes``, glob patterns), read a filesystem
snapshot (``snapshot``) or back up a database dump (``dump``); the defaults are those of a
plain backup (no stop, no excludes, no snapshot or dump of the policy's own)

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-06 21:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('policies', sa.Column('stop_containers', sa.Boolean(), nullable=False,
                                        server_default=sa.false()))
    op.add_column('policies', sa.Column('excludes', sa.JSON(), nullable=True))
    op.add_column('policies', sa.Column('snapshot', sa.String(length=16), nullable=True))
    op.add_column('policies', sa.Column('dump', sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('policies') as batch:
        batch.drop_column('dump')
        batch.drop_column('snapshot')
        batch.drop_column('excludes')
        batch.drop_column('stop_containers')
