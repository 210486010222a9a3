"""airlock: output and import requests, their files, and each steward's review

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('airlock_requests',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('slug', sa.String(length=30), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('requester', sa.String(length=100), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('justification', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('source_sha256', sa.String(length=64), nullable=False),
    sa.Column('verdict', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['slug'], ['studies.slug'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('slug', 'kind', 'requester', 'source', 'source_sha256')
    )
    with op.batch_alter_table('airlock_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_airlock_requests_requester'), ['requester'], unique=False)
        batch_op.create_index(batch_op.f('ix_airlock_requests_slug'), ['slug'], unique=False)
        batch_op.create_index(batch_op.f('ix_airlock_requests_state'), ['state'], unique=False)

    op.create_table('airlock_files',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('category', sa.String(length=20), nullable=False),
    sa.Column('verdict', sa.String(length=20), nullable=False),
    sa.Column('report', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('downloaded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered_to', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['request_id'], ['airlock_requests.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('request_id', 'path')
    )
    with op.batch_alter_table('airlock_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_airlock_files_request_id'), ['request_id'], unique=False)

    op.create_table('airlock_reviews',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('file_id', sa.Integer(), nullable=False),
    sa.Column('reviewer', sa.String(length=100), nullable=False),
    sa.Column('decision', sa.String(length=10), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['file_id'], ['airlock_files.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('file_id', 'reviewer')
    )
    with op.batch_alter_table('airlock_reviews', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_airlock_reviews_file_id'), ['file_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('airlock_reviews', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_airlock_reviews_file_id'))
    op.drop_table('airlock_reviews')
    with op.batch_alter_table('airlock_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_airlock_files_request_id'))
    op.drop_table('airlock_files')
    with op.batch_alter_table('airlock_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_airlock_requests_state'))
        batch_op.drop_index(batch_op.f('ix_airlock_requests_slug'))
        batch_op.drop_index(batch_op.f('ix_airlock_requests_requester'))
    op.drop_table('airlock_requests')
