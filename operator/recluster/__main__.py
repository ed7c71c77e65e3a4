"""`python -m recluster` is the `recluster` command."""

from .cli import main

main()
