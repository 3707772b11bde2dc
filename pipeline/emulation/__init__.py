"""The firmware on this host: a native build, or the Cortex-M4 build on QEMU, each behind a
pseudo-terminal that the device tools open like the board's serial port."""
