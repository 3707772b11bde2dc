"""The model side (TensorFlow and Keras): read the data, train, explain, convert to int8, check."""
