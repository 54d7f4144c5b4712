"""``python -m l2dynamics`` = ``l2dyn``."""

from l2dynamics.cli import main

main()
