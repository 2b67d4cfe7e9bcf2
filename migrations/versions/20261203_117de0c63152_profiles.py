"""profiles

Revision ID: 117de0c63152
Revises: 5e72ca0facfa
Create Date: 2026-12-03 19:45:50.236112
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
import app.models.common

revision: str = '117de0c63152'
down_revision: str | None = '5e72ca0facfa'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('profiles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('name_key', sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('base_url', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('headers', sa.JSON(), nullable=False),
    sa.Column('timeout_s', sa.Float(), nullable=False),
    sa.Column('verify_tls', sa.Boolean(), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('auth_kind', sa.String(length=40), nullable=False),
    sa.Column('auth_config', sa.JSON(), nullable=False),
    sa.Column('secrets_ciphertext', sa.Text(), nullable=True),
    sa.Column('secret_hints', sa.JSON(), nullable=False),
    sa.Column('token_status', sa.String(length=20), nullable=False),
    sa.Column('token_expires_at', app.models.common.UTCDateTime(timezone=True), nullable=True),
    sa.Column('token_error', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('token_refreshed_at', app.models.common.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', app.models.common.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', app.models.common.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('profiles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_profiles_name_key'), ['name_key'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('profiles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_profiles_name_key'))

    op.drop_table('profiles')
