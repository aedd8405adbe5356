"""``python -m nova_cli`` = ``nova``."""

from .app import main

main()
