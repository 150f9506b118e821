"""jobs.cancel_requested_by (cancel a running job) and notify_state (one notification per
state change)

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-06 17:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # jobs.state is a plain string column (non-native enum, no CHECK): "cancelled" needs
    # no schema change
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cancel_requested_by', sa.String(length=200),
                                      nullable=True))
    op.create_table(
        'notify_state',
        sa.Column('subject', sa.String(length=500), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('notified_state', sa.String(length=16), nullable=True),
        sa.Column('notified_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('event', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('subject', 'kind'),
    )


def downgrade() -> None:
    op.drop_table('notify_state')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('cancel_requested_by')
