"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_entries',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('at', sa.String(length=40), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=100), nullable=False),
    sa.Column('study', sa.String(length=30), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('hash'),
    sa.UniqueConstraint('prev_hash')
    )
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_entries_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_entries_actor'), ['actor'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_entries_study'), ['study'], unique=False)

    op.create_table('studies',
    sa.Column('slug', sa.String(length=30), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('requester', sa.String(length=100), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('starts', sa.Date(), nullable=False),
    sa.Column('ends', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('free_text_approved', sa.JSON(), nullable=False),
    sa.Column('retention_days', sa.Integer(), nullable=True),
    sa.Column('retention_until', sa.Date(), nullable=True),
    sa.Column('closed_on', sa.Date(), nullable=True),
    sa.Column('last_comment', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('slug')
    )
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_studies_ends'), ['ends'], unique=False)
        batch_op.create_index(batch_op.f('ix_studies_requester'), ['requester'], unique=False)
        batch_op.create_index(batch_op.f('ix_studies_state'), ['state'], unique=False)

    op.create_table('amendments',
    sa.Column('slug', sa.String(length=30), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('proposer', sa.String(length=100), nullable=False),
    sa.Column('proposed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends', sa.Date(), nullable=True),
    sa.Column('add', sa.JSON(), nullable=False),
    sa.Column('remove', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['slug'], ['studies.slug'], ),
    sa.PrimaryKeyConstraint('slug')
    )
    op.create_table('approvals',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('slug', sa.String(length=30), nullable=False),
    sa.Column('steward', sa.String(length=100), nullable=False),
    sa.Column('target_hash', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('include_free_text', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['slug'], ['studies.slug'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('approvals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_approvals_slug'), ['slug'], unique=False)

    op.create_table('archives',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('slug', sa.String(length=30), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['slug'], ['studies.slug'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('slug', 'number')
    )
    with op.batch_alter_table('archives', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_archives_slug'), ['slug'], unique=False)

    op.create_table('extracts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('slug', sa.String(length=30), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('built_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rows', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['slug'], ['studies.slug'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('extracts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_extracts_slug'), ['slug'], unique=False)

    op.create_table('members',
    sa.Column('slug', sa.String(length=30), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['slug'], ['studies.slug'], ),
    sa.PrimaryKeyConstraint('slug', 'name')
    )
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_members_name'), ['name'], unique=False)

    op.create_table('study_requests',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('slug', sa.String(length=30), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('author', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['slug'], ['studies.slug'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('slug', 'version')
    )
    with op.batch_alter_table('study_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_study_requests_slug'), ['slug'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('study_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_study_requests_slug'))

    op.drop_table('study_requests')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_members_name'))

    op.drop_table('members')
    with op.batch_alter_table('extracts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_extracts_slug'))

    op.drop_table('extracts')
    with op.batch_alter_table('archives', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_archives_slug'))

    op.drop_table('archives')
    with op.batch_alter_table('approvals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_approvals_slug'))

    op.drop_table('approvals')
    op.drop_table('amendments')
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_studies_state'))
        batch_op.drop_index(batch_op.f('ix_studies_requester'))
        batch_op.drop_index(batch_op.f('ix_studies_ends'))

    op.drop_table('studies')
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_entries_study'))
        batch_op.drop_index(batch_op.f('ix_audit_entries_actor'))
        batch_op.drop_index(batch_op.f('ix_audit_entries_action'))

    op.drop_table('audit_entries')
