"""Dumps of one database on policies and backups: a policy's ``dump_databases`` (the
databases its dump backups dump one by one), and a backup's ``dumps`` (the database dumps
it holds: kind, container, the one database or none, the file) kept on its catalog row, so
a copy on another target shows them too. Existing backups get theirs from the job that
made them (a backup's or a group's), a copy (``backup copy``, ``migrate-target``) from its
source's.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 00:00:00.000000
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: the jobs whose results name backups with their dumps, or copies of backups
KINDS = ('backup', 'group-backup', 'copy', 'migrate-target')


def upgrade() -> None:
    op.add_column('policies', sa.Column('dump_databases', sa.JSON(), nullable=True))
    op.add_column('backups', sa.Column('dumps', sa.JSON(), nullable=True))
    backfill(op.get_bind())


def backfill(conn: sa.Connection) -> None:
    """Each backup's dumps from the job record that has them (or its source's)."""
    jobs = sa.table('jobs', sa.column('kind', sa.String), sa.column('result', sa.JSON))
    backups = sa.table('backups', sa.column('id', sa.String), sa.column('dumps', sa.JSON))
    held: dict[str, list[dict[str, Any]]] = {}
    source: dict[str, str] = {}
    for (result,) in conn.execute(sa.select(jobs.c.result).where(jobs.c.kind.in_(KINDS))):
        if not isinstance(result, dict):
            continue
        for part in _dicts(result, 'members'):  # a backup, a group's members
            if part.get('backup_id') and part.get('dumps'):
                held[str(part['backup_id'])] = [_held(d) for d in part['dumps']
                                                if isinstance(d, dict)]
        for part in _dicts(result, 'items'):  # a copy, a target migration's backups
            if part.get('copy_backup_id') and part.get('source_backup_id'):
                source[str(part['copy_backup_id'])] = str(part['source_backup_id'])
    for copy, src in source.items():
        for _ in range(20):  # a copy of a copy …
            if src in held or src not in source:
                break
            src = source[src]
        if copy not in held and src in held:
            held[copy] = held[src]
    update = backups.update().where(backups.c.id == sa.bindparam('b_id')).values(
        dumps=sa.bindparam('b_dumps'))
    rows = [{'b_id': k, 'b_dumps': v} for k, v in held.items() if v]
    for n in range(0, len(rows), 500):
        conn.execute(update, rows[n:n + 500])


def _dicts(result: dict[str, Any], nested: str) -> list[dict[str, Any]]:
    return [result, *(x for x in result.get(nested) or [] if isinstance(x, dict))]


def _held(run: dict[str, Any]) -> dict[str, Any]:
    """What a dump holds, from its run's record (``common.jobs.dump_records.held``)."""
    return {'kind': run.get('kind'), 'container': run.get('container'),
            'database': run.get('database'), 'path': run.get('path')}


def downgrade() -> None:
    with op.batch_alter_table('backups') as batch:
        batch.drop_column('dumps')
    with op.batch_alter_table('policies') as batch:
        batch.drop_column('dump_databases')
