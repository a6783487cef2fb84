"""``python -m googlenet`` (also what ``torchrun -m googlenet train`` runs)."""

import sys

from .cli import main

if __name__ == "__main__":  # not when a loader's fork server or spawn imports it as __mp_main__
    sys.exit(main())
