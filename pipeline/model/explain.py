"""What was learned, shown as the lesson shows it: weights, the equation, a prediction by hand."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import keras

from pipeline.model.data import LESSON_X

FULL_PRINT_PARAMETERS = 32
"""Models up to this many weights and biases print them all (the lesson's neuron has 2, its
two-layer model 7): a person checks them by hand. Larger ones print a summary per layer."""


@dataclass(frozen=True)
class Layer:
    units: int
    activation: str
    weights: np.ndarray  # [in, out], as Keras stores them
    biases: np.ndarray

    @property
    def parameters(self) -> int:
        return int(self.weights.size + self.biases.size)

    def summary(self) -> str:
        """Shape, activation and value ranges: what a glance can take of a larger layer."""
        return (f"{self.weights.shape[0]} -> {self.units}, {self.activation}: {self.parameters} parameters, weights in "
                f"[{float(self.weights.min()):.4g}, {float(self.weights.max()):.4g}], biases in "
                f"[{float(self.biases.min()):.4g}, {float(self.biases.max()):.4g}]")


def layers(model: keras.Model) -> list[Layer]:
    out = []
    for layer in model.layers:
        kernel, bias = layer.get_weights()
        out.append(Layer(int(kernel.shape[1]), keras.activations.serialize(layer.activation) if not
                         isinstance(layer.activation, str) else layer.activation, kernel, bias))
    return out


def _activation(name: str, z: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(z, 0)
    if name == "relu6":
        return np.clip(z, 0, 6)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "softmax":
        e = np.exp(z - np.max(z, axis=-1, keepdims=True))
        return e / np.sum(e, axis=-1, keepdims=True)
    return z


def forward(model_layers: list[Layer], x: np.ndarray) -> np.ndarray:
    """Each neuron's sum w1*x1 + w2*x2 + ... + b, layer after layer, in float64."""
    h = np.asarray(x, dtype=np.float64)
    for layer in model_layers:
        h = _activation(layer.activation, h @ layer.weights.astype(np.float64) + layer.biases)
    return h


def _term(coefficient: float, name: str, first: bool) -> str:
    magnitude = f"{abs(coefficient):.4f}"
    text = f"{magnitude}{name}"
    sign = "-" if coefficient < 0 and magnitude != "0.0000" else ("" if first else "+")
    return f"{sign}{text}" if first else f" {sign} {text}"


def equation(model_layers: list[Layer], names: tuple[str, ...], inputs: int) -> list[str] | None:
    """The composed affine map, when every activation is linear: 'y = 1.9974x - 0.9918'."""
    if any(layer.activation not in ("linear", None) for layer in model_layers):
        return None
    weights = np.eye(inputs)
    bias = np.zeros(inputs)
    for layer in model_layers:
        weights = weights @ layer.weights.astype(np.float64)
        bias = bias @ layer.weights.astype(np.float64) + layer.biases
    lines = []
    for j in range(weights.shape[1]):
        text = "".join(_term(float(weights[i, j]), names[i], i == 0) for i in range(inputs))
        lines.append(f"{names[inputs + j]} = {text}{_term(float(bias[j]), '', False)}")
    return lines


def hand_computation(model_layers: list[Layer], x: float) -> list[str]:
    """The lesson's two-layer arithmetic spelled out for one input value (small networks only)."""
    lines = []
    h = np.array([x], dtype=np.float64)
    names = ["x"]
    for depth, layer in enumerate(model_layers, start=1):
        outs = []
        for j in range(layer.units):
            terms = " + ".join(f"{layer.weights[i, j]:.6g}*{names[i]}" for i in range(len(names)))
            z = float(h @ layer.weights[:, j].astype(np.float64) + layer.biases[j])
            value = float(_activation(layer.activation, np.array(z)))
            body = f"{terms} + {layer.biases[j]:.6g}"
            expression = body if layer.activation in ("linear", None) else f"{layer.activation}({body})"
            label = f"h{depth}_{j + 1}" if depth < len(model_layers) else (f"y{j + 1}" if layer.units > 1 else "y")
            lines.append(f"{label} = {expression} = {value:.6f}")
            outs.append(value)
        h = np.array(outs)
        names = [f"h{depth}_{j + 1}" for j in range(layer.units)]
    return lines


@dataclass(frozen=True)
class Explanation:
    layers: list[Layer]
    equation: list[str] | None
    by_hand: list[str]
    by_hand_error: float | None

    @property
    def parameters(self) -> int:
        return sum(layer.parameters for layer in self.layers)

    @property
    def full(self) -> bool:
        """Whether every weight is shown, as the lesson shows them, or a summary per layer."""
        return self.parameters <= FULL_PRINT_PARAMETERS

    def lines(self) -> list[str]:
        """What the lesson prints: each layer's weights and biases, the equation, the hand computation.
        A model larger than the lesson's prints each layer's shape instead (its weights go to report.json)."""
        def show(values: np.ndarray) -> str:
            return np.array2string(np.asarray(values), precision=6, separator=", ", suppress_small=True,
                                   max_line_width=10**6).replace("\n", "")

        if self.full:
            out = [f"layer {k}: weights {show(layer.weights)}, biases {show(layer.biases)}"
                   for k, layer in enumerate(self.layers, start=1)]
        else:
            out = [f"layer {k}: {layer.summary()}" for k, layer in enumerate(self.layers, start=1)]
            out.append(f"{self.parameters} parameters (every weight and bias in report.json)")
        out += self.equation or []
        if self.by_hand:
            out += [f"by hand at x = {LESSON_X:g}:", *(f"  {line}" for line in self.by_hand),
                    f"  by hand - predict({LESSON_X:g}) = {self.by_hand_error:.2g}"]
        return out

    def as_dict(self) -> dict:
        return {"parameters": self.parameters,
                "layers": [{"units": layer.units, "activation": layer.activation, "weights": _short(layer.weights),
                            "biases": _short(layer.biases)} for layer in self.layers],
                "equation": self.equation, "by_hand": self.by_hand, "by_hand_error": self.by_hand_error}


def _short(values: np.ndarray) -> list:
    """float32 weights as their shortest decimals, the same float32 when read back."""
    array = np.asarray(values, dtype=np.float32)
    if array.ndim > 1:
        return [_short(row) for row in array]
    return [float(str(v)) for v in array]


def uncentered(model_layers: list[Layer], center: float) -> list[Layer]:
    """The layers of a model trained on x - center, as a model of x: the center folded into the first
    layer's biases (b - center * sum of each neuron's weights, in float64), so the equation reads in x."""
    if not center or not model_layers:
        return model_layers
    first = model_layers[0]
    weights = first.weights.astype(np.float64)
    biases = first.biases.astype(np.float64) - float(np.float32(center)) * weights.sum(axis=0)
    return [Layer(first.units, first.activation, first.weights, biases), *model_layers[1:]]


def explain(model: keras.Model, names: tuple[str, ...], inputs: int, center: float = 0.0) -> Explanation:
    """Everything shown about a trained model, in terms of x (a center folded into the biases); the hand
    computation only where it fits a glance."""
    model_layers = uncentered(layers(model), center)
    small = (inputs == 1 and len(model_layers) > 1 and all(layer.units <= 4 for layer in model_layers)
             and model_layers[-1].activation != "softmax")
    steps: list[str] = []
    error = None
    if small:
        x = np.array([[LESSON_X]])
        steps = hand_computation(model_layers, LESSON_X)
        error = float(forward(model_layers, x)[0, 0]) - float(model(x.astype(np.float32) - np.float32(center))[0, 0])
    return Explanation(model_layers, equation(model_layers, names, inputs), steps, error)
