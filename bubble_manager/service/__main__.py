"""`python -m bubble_manager.service`: what JupyterHub runs as the bubble-manager service."""

from .app import main

main()
