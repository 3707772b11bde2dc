"""int8 arithmetic with numpy only: the flatbuffer reader, affine quantization, the integer
reference, the TFLM oracle and the error metrics. Both sides of the serial link use it."""
