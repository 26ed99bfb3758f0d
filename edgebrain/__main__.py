"""``python -m edgebrain``: the command line (same as the ``edgebrain`` command)."""

from .cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
