"""python -m pipeline.emulate: run the firmware on this host behind a pseudo-terminal."""
import sys

from pipeline.emulation.emulate import main

if __name__ == "__main__":
    sys.exit(main())
