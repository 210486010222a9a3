"""transfer tokens

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('transfer_tokens',
    sa.Column('token_id', sa.String(length=16), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('study', sa.String(length=30), nullable=False),
    sa.Column('purpose', sa.String(length=30), nullable=False),
    sa.Column('manifest_sha256', sa.String(length=64), nullable=True),
    sa.Column('job', sa.String(length=63), nullable=False),
    sa.Column('issued_by', sa.String(length=100), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=30), nullable=True),
    sa.Column('uses', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('token_id'),
    sa.UniqueConstraint('sha256')
    )
    with op.batch_alter_table('transfer_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transfer_tokens_study'), ['study'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('transfer_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transfer_tokens_study'))

    op.drop_table('transfer_tokens')
