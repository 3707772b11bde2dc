"""The builtin ops the pinned board TFLM tree can register, and each one's resolver method.

Read from MicroMutableOpResolver in the Nano's library (Chirale_TensorFlowLite 2.0.0, the
`lib_deps` of platformio.ini): one `Add<Op>` method per builtin. Custom-op entry points
(AddCustom, AddEthosU, AddCircularBuffer, AddDetectionPostprocess) are left out: a model's
builtin op is deployable on the board exactly when its method is in this list.
"""
from __future__ import annotations

from pipeline.errors import BadInput
from pipeline.int8.tflite_model import TfliteModel

TREE = "Chirale_TensorFlowLite 2.0.0"

RESOLVER_METHODS = (
    "AddAbs", "AddAdd", "AddAddN", "AddArgMax", "AddArgMin", "AddAssignVariable", "AddAveragePool2D",
    "AddBatchToSpaceNd", "AddBroadcastArgs", "AddBroadcastTo", "AddCallOnce", "AddCast", "AddCeil",
    "AddConcatenation", "AddConv2D", "AddCos", "AddCumSum", "AddDepthToSpace", "AddDepthwiseConv2D",
    "AddDequantize", "AddDiv", "AddElu", "AddEqual", "AddExp", "AddExpandDims", "AddFill", "AddFloor",
    "AddFloorDiv", "AddFloorMod", "AddFullyConnected", "AddGather", "AddGatherNd", "AddGreater",
    "AddGreaterEqual", "AddHardSwish", "AddIf", "AddL2Normalization", "AddL2Pool2D", "AddLeakyRelu", "AddLess",
    "AddLessEqual", "AddLog", "AddLogSoftmax", "AddLogicalAnd", "AddLogicalNot", "AddLogicalOr", "AddLogistic",
    "AddMaxPool2D", "AddMaximum", "AddMean", "AddMinimum", "AddMirrorPad", "AddMul", "AddNeg", "AddNotEqual",
    "AddPack", "AddPad", "AddPadV2", "AddPrelu", "AddQuantize", "AddReadVariable", "AddReduceMax", "AddRelu",
    "AddRelu6", "AddReshape", "AddResizeBilinear", "AddResizeNearestNeighbor", "AddRound", "AddRsqrt",
    "AddSelectV2", "AddShape", "AddSin", "AddSlice", "AddSoftmax", "AddSpaceToBatchNd", "AddSpaceToDepth",
    "AddSplit", "AddSplitV", "AddSqrt", "AddSquare", "AddSquaredDifference", "AddSqueeze", "AddStridedSlice",
    "AddSub", "AddSum", "AddSvdf", "AddTanh", "AddTranspose", "AddTransposeConv", "AddUnidirectionalSequenceLSTM",
    "AddUnpack", "AddVarHandle", "AddWhile", "AddZerosLike",
)

_BY_KEY = {method[3:].lower(): method for method in RESOLVER_METHODS}


class UnsupportedOpError(BadInput, ValueError):
    """The model uses an op the board's TFLM tree cannot register."""


def resolver_method(op: str) -> str | None:
    """FULLY_CONNECTED -> AddFullyConnected, CONV_2D -> AddConv2D; None for an op the tree lacks.
    The methods are the op's name without underscores, compared ignoring case."""
    return _BY_KEY.get(op.replace("_", "").lower())


def require_ops(model: TfliteModel, layer_of=lambda op: "") -> None:
    """Refuses, naming the op (and its layer when known), a model the board's TFLM cannot run."""
    for op in model.operators:
        if resolver_method(op.op) is None:
            layer = layer_of(op)
            raise UnsupportedOpError(
                f"op {op.index} {op.op}{f' (layer {layer})' if layer else ''} is not in the board's TFLM library "
                f"({TREE}), which registers {len(RESOLVER_METHODS)} builtin ops; the AOT engine computes only "
                "FULLY_CONNECTED, RESHAPE, LOGISTIC, TANH and SOFTMAX. Replace the layer, or export the model "
                "without it")
