"""bubble-manager: sealed analysis bubbles for health data warehouses, on JupyterHub."""

__version__ = "0.1.0"
