"""What the firmware costs on the Nano's Cortex-M4: flash, RAM, stack and instructions per
inference, measured on the QEMU image."""
