"""python -m pipeline.verify: prove a device computes what TFLM computes."""
import sys

from pipeline.device.verify import main

if __name__ == "__main__":
    sys.exit(main())
