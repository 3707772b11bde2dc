"""python -m pipeline.predict: ask a device (or an emulation) for the model's answers."""
import sys

from pipeline.device.predict import main

if __name__ == "__main__":
    sys.exit(main())
