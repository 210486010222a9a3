"""reconciler: its lock, step journal, expiry warnings sent, closures in progress, named state;
indexes on studies for the due queries

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.create_index('ix_lifecycle_studies_state_starts', ['state', 'starts'], unique=False)
        batch_op.create_index('ix_lifecycle_studies_state_ends', ['state', 'ends'], unique=False)
        batch_op.create_index('ix_lifecycle_studies_state_retention', ['state', 'retention_until'], unique=False)
    op.create_table('lifecycle_lock',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('holder', sa.String(length=200), nullable=False),
    sa.Column('acquired_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('lifecycle_state',
    sa.Column('key', sa.String(length=60), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('lifecycle_closures',
    sa.Column('study', sa.String(length=30), nullable=False),
    sa.Column('reason', sa.String(length=20), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('servers_stopped_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('locked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('snapshot_number', sa.Integer(), nullable=True),
    sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('key_destroyed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('live_removed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rejected_archives', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['study'], ['studies.slug'], ),
    sa.PrimaryKeyConstraint('study')
    )
    with op.batch_alter_table('lifecycle_closures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lifecycle_closures_finished_at'), ['finished_at'], unique=False)

    op.create_table('lifecycle_journal',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('study', sa.String(length=30), nullable=True),
    sa.Column('step', sa.String(length=40), nullable=False),
    sa.Column('holder', sa.String(length=200), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['study'], ['studies.slug'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('lifecycle_journal', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lifecycle_journal_outcome'), ['outcome'], unique=False)
        batch_op.create_index('ix_lifecycle_journal_study_step', ['study', 'step'], unique=False)

    op.create_table('lifecycle_warnings',
    sa.Column('study', sa.String(length=30), nullable=False),
    sa.Column('ends', sa.Date(), nullable=False),
    sa.Column('threshold_days', sa.Integer(), nullable=False),
    sa.Column('days_told', sa.Integer(), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['study'], ['studies.slug'], ),
    sa.PrimaryKeyConstraint('study', 'ends', 'threshold_days')
    )


def downgrade() -> None:
    op.drop_table('lifecycle_warnings')
    with op.batch_alter_table('lifecycle_journal', schema=None) as batch_op:
        batch_op.drop_index('ix_lifecycle_journal_study_step')
        batch_op.drop_index(batch_op.f('ix_lifecycle_journal_outcome'))

    op.drop_table('lifecycle_journal')
    with op.batch_alter_table('lifecycle_closures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lifecycle_closures_finished_at'))

    op.drop_table('lifecycle_closures')
    op.drop_table('lifecycle_state')
    op.drop_table('lifecycle_lock')
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.drop_index('ix_lifecycle_studies_state_retention')
        batch_op.drop_index('ix_lifecycle_studies_state_ends')
        batch_op.drop_index('ix_lifecycle_studies_state_starts')
