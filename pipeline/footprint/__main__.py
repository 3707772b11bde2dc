"""python -m pipeline.footprint: measure the emitted model's cost on the Cortex-M4."""
import sys

from pipeline.footprint.measurement import main

sys.exit(main())
