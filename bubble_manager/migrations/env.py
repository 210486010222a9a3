"""Alembic environment: runs on the connection the Store hands over (no alembic.ini needed)."""

from alembic import context
from sqlalchemy import create_engine

from bubble_manager.store import Base
import bubble_manager.runtime.uids  # noqa: F401  (registers BubbleUidRow, migration 0002)
import bubble_manager.lifecycle_store  # noqa: F401  (registers the reconciler's tables, migration 0003)
import bubble_manager.airlock.models  # noqa: F401  (registers the airlock's tables, migration 0004)
import bubble_manager.runtime.transfer_tokens  # noqa: F401  (registers transfer_tokens, migration 0005)

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url"))
        with engine.begin() as connection:
            _run(connection)
        return
    _run(connection)


def _run(connection) -> None:  # noqa: ANN001
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
