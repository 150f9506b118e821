"""Policies: what is backed up, when, where, how long it is kept, how fresh it must be;
leases (one active scheduler)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 17:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'policies',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('selection', sa.JSON(), nullable=False),
        sa.Column('schedule', sa.String(length=200), nullable=False),
        sa.Column('tz', sa.String(length=64), nullable=False),
        sa.Column('jitter_seconds', sa.Integer(), nullable=False),
        sa.Column('targets', sa.JSON(), nullable=False),
        sa.Column('format', sa.String(length=16), nullable=True),
        sa.Column('retention', sa.JSON(), nullable=False),
        sa.Column('rpo_seconds', sa.BigInteger(), nullable=True),
        sa.Column('verify_subset_percent', sa.Float(), nullable=True),
        sa.Column('verify_schedule', sa.String(length=200), nullable=True),
        sa.Column('drill_schedule', sa.String(length=200), nullable=True),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'),
    )
    op.create_table(
        'leases',
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('holder', sa.String(length=200), nullable=True),
        sa.Column('token', sa.BigInteger(), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('leases')
    op.drop_table('policies')
