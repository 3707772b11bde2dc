"""The device side (pyserial and numpy, no TensorFlow): the serial client, the deployed
model's files, and the predict and verify tools built on them."""
