"""python -m pipeline.build: the command line of the build (its arguments: pipeline.build_args). A model
to train goes to the stages (pipeline.stages); a given model's files are read here and deployed through
pipeline.api, as a notebook deploys its objects."""
from __future__ import annotations

import signal
import sys

from pipeline import api, build_args, cli
from pipeline.build_args import parse_args
from pipeline.stages import _imports, build, read_given


@cli.command
def main(argv: list[str]) -> int:
    args = parse_args(argv)
    say = (lambda *a, **k: None) if args.quiet else print
    if not (args.keras or args.tflite):
        build(args, say)
        return 0
    build_args.validate(args)  # before the seconds of importing TensorFlow to read the files
    _imports()
    api.deploy(read_given(args), out=args.out, report_dir=args.report_dir, engine=args.engine,
               labels=None if args.labels is None else args.labels.split(","),
               input_range=args.input_range, tolerance_lsb=args.tolerance_lsb, per_channel=args.per_channel,
               footprint=args.footprint, say=say)
    return 0


if __name__ == "__main__":
    status = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # done: a Ctrl-C during Python's shutdown cannot change the status
    sys.exit(status)
