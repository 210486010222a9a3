"""bubble uids: host ids of local bubbles, one uid per study member and one gid per study

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('bubble_uids',
    sa.Column('uid', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('slug', sa.String(length=30), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('member', sa.String(length=100), nullable=False),
    sa.Column('allocated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['slug'], ['studies.slug'], ),
    sa.PrimaryKeyConstraint('uid'),
    sa.UniqueConstraint('slug', 'kind', 'member')
    )
    with op.batch_alter_table('bubble_uids', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bubble_uids_slug'), ['slug'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('bubble_uids', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bubble_uids_slug'))
    op.drop_table('bubble_uids')
