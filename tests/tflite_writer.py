"""int8 TFLite flatbuffers written from given integers, with no converter and no training.

A test that needs exact quantization (a zero point of -128, a scale whose float product rounds
apart from its double one) or a model that is the same bytes on every machine writes it here:
TensorFlow's converter calibrates with float kernels whose last bits differ between CPUs.

    model = write([tensor("x", (1, 4), 0.5, -3), tensor("w", (2, 4), 0.01, 0, weights),
                   tensor("b", (2,), 0.005, 0, bias, "INT32"), tensor("y", (1, 2), 0.2, 7)],
                  [fully_connected(0, 1, 2, 3)], inputs=[0], outputs=[3])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import flatbuffers
import numpy as np
import tflite

_DTYPES = {"INT8": (tflite.TensorType.INT8, np.int8), "INT32": (tflite.TensorType.INT32, np.int32),
           "UINT8": (tflite.TensorType.UINT8, np.uint8), "INT16": (tflite.TensorType.INT16, np.int16),
           "FLOAT32": (tflite.TensorType.FLOAT32, np.float32)}


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int, ...]
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    data: np.ndarray | None = None
    dtype: str = "INT8"
    quantized_dimension: int = 0


def tensor(name: str, shape: Sequence[int], scale: float | Sequence[float] | None, zero_point: int | Sequence[int],
           data: np.ndarray | None = None, dtype: str = "INT8", quantized_dimension: int = 0) -> Tensor:
    """A tensor; scale and zero_point are one value (per tensor) or one per channel; scale None: not
    quantized (an INT32 shape, axis or paddings tensor)."""
    scales = () if scale is None else tuple(float(s) for s in np.atleast_1d(scale))
    zps = () if scale is None else tuple(int(z) for z in np.atleast_1d(zero_point))
    if len(zps) == 1 and len(scales) > 1:
        zps = zps * len(scales)
    return Tensor(name, tuple(int(d) for d in shape), scales, zps, data, dtype, quantized_dimension)


@dataclass(frozen=True)
class Op:
    code: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options_type: int = 0
    options: Callable[[flatbuffers.Builder], int] | None = None


ACTIVATIONS = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}


def fully_connected(x: int, weights: int, bias: int, y: int, activation: str = "NONE") -> Op:
    def options(b: flatbuffers.Builder) -> int:
        tflite.FullyConnectedOptionsStart(b)
        tflite.FullyConnectedOptionsAddFusedActivationFunction(b, ACTIVATIONS[activation])
        return tflite.FullyConnectedOptionsEnd(b)
    return Op(tflite.BuiltinOperator.FULLY_CONNECTED, (x, weights, bias), (y,),
              tflite.BuiltinOptions.FullyConnectedOptions, options)


PADDINGS = {"SAME": tflite.Padding.SAME, "VALID": tflite.Padding.VALID}


def conv_2d(x: int, weights: int, bias: int, y: int, padding: str = "SAME", stride: tuple[int, int] = (1, 1),
            dilation: tuple[int, int] = (1, 1), activation: str = "NONE") -> Op:
    def options(b: flatbuffers.Builder) -> int:
        tflite.Conv2DOptionsStart(b)
        tflite.Conv2DOptionsAddPadding(b, PADDINGS[padding])
        tflite.Conv2DOptionsAddStrideH(b, stride[0])
        tflite.Conv2DOptionsAddStrideW(b, stride[1])
        tflite.Conv2DOptionsAddDilationHFactor(b, dilation[0])
        tflite.Conv2DOptionsAddDilationWFactor(b, dilation[1])
        tflite.Conv2DOptionsAddFusedActivationFunction(b, ACTIVATIONS[activation])
        return tflite.Conv2DOptionsEnd(b)
    return Op(tflite.BuiltinOperator.CONV_2D, (x, weights, bias), (y,), tflite.BuiltinOptions.Conv2DOptions, options)


def depthwise_conv_2d(x: int, weights: int, bias: int, y: int, multiplier: int, padding: str = "SAME",
                      stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1),
                      activation: str = "NONE") -> Op:
    def options(b: flatbuffers.Builder) -> int:
        tflite.DepthwiseConv2DOptionsStart(b)
        tflite.DepthwiseConv2DOptionsAddPadding(b, PADDINGS[padding])
        tflite.DepthwiseConv2DOptionsAddStrideH(b, stride[0])
        tflite.DepthwiseConv2DOptionsAddStrideW(b, stride[1])
        tflite.DepthwiseConv2DOptionsAddDepthMultiplier(b, multiplier)
        tflite.DepthwiseConv2DOptionsAddDilationHFactor(b, dilation[0])
        tflite.DepthwiseConv2DOptionsAddDilationWFactor(b, dilation[1])
        tflite.DepthwiseConv2DOptionsAddFusedActivationFunction(b, ACTIVATIONS[activation])
        return tflite.DepthwiseConv2DOptionsEnd(b)
    return Op(tflite.BuiltinOperator.DEPTHWISE_CONV_2D, (x, weights, bias), (y,),
              tflite.BuiltinOptions.DepthwiseConv2DOptions, options)


def pool_2d(kind: str, x: int, y: int, filter_size: tuple[int, int], padding: str = "VALID",
            stride: tuple[int, int] = (1, 1), activation: str = "NONE") -> Op:
    """kind: AVERAGE_POOL_2D or MAX_POOL_2D."""
    def options(b: flatbuffers.Builder) -> int:
        tflite.Pool2DOptionsStart(b)
        tflite.Pool2DOptionsAddPadding(b, PADDINGS[padding])
        tflite.Pool2DOptionsAddStrideH(b, stride[0])
        tflite.Pool2DOptionsAddStrideW(b, stride[1])
        tflite.Pool2DOptionsAddFilterHeight(b, filter_size[0])
        tflite.Pool2DOptionsAddFilterWidth(b, filter_size[1])
        tflite.Pool2DOptionsAddFusedActivationFunction(b, ACTIVATIONS[activation])
        return tflite.Pool2DOptionsEnd(b)
    return Op(getattr(tflite.BuiltinOperator, kind), (x,), (y,), tflite.BuiltinOptions.Pool2DOptions, options)


def elementwise(kind: str, a: int, b_: int, y: int, activation: str = "NONE") -> Op:
    """kind: ADD or MUL."""
    start, add_activation, end = {"ADD": (tflite.AddOptionsStart, tflite.AddOptionsAddFusedActivationFunction,
                                          tflite.AddOptionsEnd),
                                  "MUL": (tflite.MulOptionsStart, tflite.MulOptionsAddFusedActivationFunction,
                                          tflite.MulOptionsEnd)}[kind]

    def options(b: flatbuffers.Builder) -> int:
        start(b)
        add_activation(b, ACTIVATIONS[activation])
        return end(b)
    return Op(getattr(tflite.BuiltinOperator, kind), (a, b_), (y,),
              getattr(tflite.BuiltinOptions, f"{kind.capitalize()}Options"), options)


def mean(x: int, axis: int, y: int, keep_dims: bool) -> Op:
    def options(b: flatbuffers.Builder) -> int:
        tflite.ReducerOptionsStart(b)
        tflite.ReducerOptionsAddKeepDims(b, keep_dims)
        return tflite.ReducerOptionsEnd(b)
    return Op(tflite.BuiltinOperator.MEAN, (x, axis), (y,), tflite.BuiltinOptions.ReducerOptions, options)


def pad(x: int, paddings: int, y: int) -> Op:
    return Op(tflite.BuiltinOperator.PAD, (x, paddings), (y,))


def concatenation(inputs: Sequence[int], y: int, axis: int) -> Op:
    def options(b: flatbuffers.Builder) -> int:
        tflite.ConcatenationOptionsStart(b)
        tflite.ConcatenationOptionsAddAxis(b, axis)
        return tflite.ConcatenationOptionsEnd(b)
    return Op(tflite.BuiltinOperator.CONCATENATION, tuple(inputs), (y,), tflite.BuiltinOptions.ConcatenationOptions,
              options)


def reshape(x: int, shape: int, y: int) -> Op:
    return Op(tflite.BuiltinOperator.RESHAPE, (x, shape), (y,))


def expand_dims(x: int, axis: int, y: int) -> Op:
    return Op(tflite.BuiltinOperator.EXPAND_DIMS, (x, axis), (y,))


def leaky_relu(x: int, y: int, alpha: float) -> Op:
    def options(b: flatbuffers.Builder) -> int:
        tflite.LeakyReluOptionsStart(b)
        tflite.LeakyReluOptionsAddAlpha(b, alpha)
        return tflite.LeakyReluOptionsEnd(b)
    return Op(tflite.BuiltinOperator.LEAKY_RELU, (x,), (y,), tflite.BuiltinOptions.LeakyReluOptions, options)


def softmax(x: int, y: int, beta: float = 1.0) -> Op:
    def options(b: flatbuffers.Builder) -> int:
        tflite.SoftmaxOptionsStart(b)
        tflite.SoftmaxOptionsAddBeta(b, beta)
        return tflite.SoftmaxOptionsEnd(b)
    return Op(tflite.BuiltinOperator.SOFTMAX, (x,), (y,), tflite.BuiltinOptions.SoftmaxOptions, options)


def dense_chain(layers: Sequence[tuple[np.ndarray, np.ndarray, float, int, str]], input_scale: float,
                input_zero_point: int, classes: bool = False) -> bytes:
    """FULLY_CONNECTED layers in a chain, each (int8 weights [units, depth], int32 bias, output scale,
    output zero point, activation), the bias at the input scale times the weight scale as TFLite
    has it (every weight scale here 1/64); classes: a SOFTMAX after them (scale 1/256, zero point -128)."""
    tensors = [tensor("input", (1, layers[0][0].shape[1]), input_scale, input_zero_point)]
    ops = []
    scale = input_scale
    for k, (weights, bias, out_scale, out_zp, activation) in enumerate(layers):
        x = len(tensors) - 1
        tensors += [tensor(f"dense{k}/weights", weights.shape, 1 / 64, 0, weights),
                    tensor(f"dense{k}/bias", (weights.shape[0],), scale / 64, 0, bias, "INT32"),
                    tensor(f"dense{k}/output", (1, weights.shape[0]), out_scale, out_zp)]
        ops.append(fully_connected(x, x + 1, x + 2, x + 3, activation))
        scale = out_scale
    if classes:
        tensors.append(tensor("probabilities", tensors[-1].shape, 1 / 256, -128))
        ops.append(softmax(len(tensors) - 2, len(tensors) - 1))
    return write(tensors, ops, [0], [len(tensors) - 1])


def _vector(b: flatbuffers.Builder, start: Callable[[flatbuffers.Builder, int], None], values: Sequence,
            prepend: Callable[[object], None]) -> int:
    start(b, len(values))
    for value in reversed(list(values)):
        prepend(value)
    return b.EndVector()


def write(tensors: Sequence[Tensor], ops: Sequence[Op], inputs: Sequence[int], outputs: Sequence[int]) -> bytes:
    """The model's flatbuffer: one subgraph, buffer 0 empty as TFLite wants, one buffer per tensor."""
    b = flatbuffers.Builder(1024)
    buffers = []
    for t in [None, *tensors]:
        data = None if t is None or t.data is None else np.asarray(t.data, dtype=_DTYPES[t.dtype][1]).astype(
            np.dtype(_DTYPES[t.dtype][1]).newbyteorder("<")).tobytes()
        vector = None
        if data:
            b.StartVector(1, len(data), 16)
            b.head = b.head - len(data)
            b.Bytes[b.head:b.head + len(data)] = data
            vector = b.EndVector()
        tflite.BufferStart(b)
        if vector is not None:
            tflite.BufferAddData(b, vector)
        buffers.append(tflite.BufferEnd(b))
    tensor_offsets = []
    for k, t in enumerate(tensors):
        name = b.CreateString(t.name)
        shape = _vector(b, tflite.TensorStartShapeVector, t.shape, b.PrependInt32)
        quantization = None
        if t.scales:
            scales = _vector(b, tflite.QuantizationParametersStartScaleVector, t.scales, b.PrependFloat32)
            zps = _vector(b, tflite.QuantizationParametersStartZeroPointVector, t.zero_points, b.PrependInt64)
            tflite.QuantizationParametersStart(b)
            tflite.QuantizationParametersAddScale(b, scales)
            tflite.QuantizationParametersAddZeroPoint(b, zps)
            tflite.QuantizationParametersAddQuantizedDimension(b, t.quantized_dimension)
            quantization = tflite.QuantizationParametersEnd(b)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, _DTYPES[t.dtype][0])
        tflite.TensorAddBuffer(b, k + 1)
        tflite.TensorAddName(b, name)
        if quantization is not None:
            tflite.TensorAddQuantization(b, quantization)
        tensor_offsets.append(tflite.TensorEnd(b))
    codes = sorted({op.code for op in ops})
    op_offsets = []
    for op in ops:
        op_inputs = _vector(b, tflite.OperatorStartInputsVector, op.inputs, b.PrependInt32)
        op_outputs = _vector(b, tflite.OperatorStartOutputsVector, op.outputs, b.PrependInt32)
        options = op.options(b) if op.options else None
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, codes.index(op.code))
        tflite.OperatorAddInputs(b, op_inputs)
        tflite.OperatorAddOutputs(b, op_outputs)
        if options is not None:
            tflite.OperatorAddBuiltinOptionsType(b, op.options_type)
            tflite.OperatorAddBuiltinOptions(b, options)
        op_offsets.append(tflite.OperatorEnd(b))
    tensors_vector = _vector(b, tflite.SubGraphStartTensorsVector, tensor_offsets, b.PrependUOffsetTRelative)
    ops_vector = _vector(b, tflite.SubGraphStartOperatorsVector, op_offsets, b.PrependUOffsetTRelative)
    inputs_vector = _vector(b, tflite.SubGraphStartInputsVector, inputs, b.PrependInt32)
    outputs_vector = _vector(b, tflite.SubGraphStartOutputsVector, outputs, b.PrependInt32)
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tensors_vector)
    tflite.SubGraphAddInputs(b, inputs_vector)
    tflite.SubGraphAddOutputs(b, outputs_vector)
    tflite.SubGraphAddOperators(b, ops_vector)
    subgraph = tflite.SubGraphEnd(b)
    code_offsets = []
    for code in codes:
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
        tflite.OperatorCodeAddBuiltinCode(b, code)
        tflite.OperatorCodeAddVersion(b, 1)
        code_offsets.append(tflite.OperatorCodeEnd(b))
    codes_vector = _vector(b, tflite.ModelStartOperatorCodesVector, code_offsets, b.PrependUOffsetTRelative)
    subgraphs_vector = _vector(b, tflite.ModelStartSubgraphsVector, [subgraph], b.PrependUOffsetTRelative)
    buffers_vector = _vector(b, tflite.ModelStartBuffersVector, buffers, b.PrependUOffsetTRelative)
    description = b.CreateString("written by tests/tflite_writer.py")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, codes_vector)
    tflite.ModelAddSubgraphs(b, subgraphs_vector)
    tflite.ModelAddDescription(b, description)
    tflite.ModelAddBuffers(b, buffers_vector)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())
