# bubble-manager configuration of the chart (hub and service read it; see docs/configuration.md).
# The database URL is a secret: it is read from a file, never written into a ConfigMap.
import os
from pathlib import Path

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

SECRETS_DIR = Path(os.environ.get("BUBBLE_MANAGER_SECRETS_DIR", "/etc/bubble-manager/secrets"))
c.BubbleManager.db_url = (SECRETS_DIR / "database-url").read_text().strip()
