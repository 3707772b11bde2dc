"""TinyML deployment pipeline: (x, y) data -> Keras -> int8 TFLite -> firmware sources -> verified device."""
