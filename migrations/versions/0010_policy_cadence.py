"""Policy cadences: when each policy's scheduled verify and restore drill last ran (the
scheduler claims a run by moving these forward, as ``last_run_at`` for backups)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 18:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('policies', sa.Column('verify_last_run_at', sa.DateTime(timezone=True),
                                        nullable=True))
    op.add_column('policies', sa.Column('drill_last_run_at', sa.DateTime(timezone=True),
                                        nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('policies') as batch:
        batch.drop_column('drill_last_run_at')
        batch.drop_column('verify_last_run_at')
