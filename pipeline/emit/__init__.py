"""From a checked int8 model to files: the firmware's C sources, the AOT tables, the report,
and the atomic writes that put them in place."""
