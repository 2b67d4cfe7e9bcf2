"""runs attempts logs

Revision ID: 08aa0c93623b
Revises: 
Create Date: 2026-12-03 19:05:04.688013
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
import app.models.common

revision: str = '08aa0c93623b'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=True),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('trigger', sa.String(length=20), nullable=False),
    sa.Column('progress_percent', sa.Float(), nullable=False),
    sa.Column('progress_message', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('error_type', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('error_message', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('attempt_count', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('retry_of', sa.Integer(), nullable=True),
    sa.Column('created_at', app.models.common.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', app.models.common.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', app.models.common.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index('ix_runs_status_created', ['status', 'created_at'], unique=False)
        batch_op.create_index('ix_runs_task_created', ['task_id', 'created_at'], unique=False)

    op.create_table('attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('worker_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('error_type', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('error_message', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('started_at', app.models.common.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', app.models.common.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attempts_run_id'), ['run_id'], unique=False)

    op.create_table('run_logs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('attempt_number', sa.Integer(), nullable=False),
    sa.Column('level', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('message', sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
    sa.Column('at', app.models.common.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('run_logs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_run_logs_run_id'), ['run_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('run_logs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_run_logs_run_id'))

    op.drop_table('run_logs')
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attempts_run_id'))

    op.drop_table('attempts')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runs_task_created')
        batch_op.drop_index('ix_runs_status_created')

    op.drop_table('runs')
