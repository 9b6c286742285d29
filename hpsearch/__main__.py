"""``python -m hpsearch`` works like the ``hpsearch`` script."""

from hpsearch.cli import main

main()
