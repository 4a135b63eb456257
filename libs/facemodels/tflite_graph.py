"""Rebuild a float TFLite flatbuffer as a TensorFlow function, for the SavedModel (GPU) path.

Some networks ship only as ``.tflite`` files. LiteRT runs them on CPUs, but GPUs run TensorFlow,
so at build time we read the flatbuffer with the schema bindings TensorFlow ships, take every
constant tensor as a weight and replay its operators with the equivalent TensorFlow ops. Only the
operators our models use are known; any other one is refused by name rather than guessed. The
batch dimension is left free (the file may fix it, as MobileFaceNet's [2, 112, 112, 3] does).

Float16 weights (a converter's ``float16`` option: FLOAT16 constants, each read through a
``DEQUANTIZE`` operator) are widened to float32 once, at load time, exactly as LiteRT's
DEQUANTIZE does; the DEQUANTIZE steps then disappear and the float32 values are the weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema

_OPERATOR_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
_PADDING = {schema.Padding.SAME: "SAME", schema.Padding.VALID: "VALID"}
_PRELU_SPELLING = ("RELU", "ABS", "SUB", "MUL", "ADD")
_CONSTANT_TYPES = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.INT32: np.int32,
                   schema.TensorType.FLOAT16: np.float16}
_DTYPES = {schema.TensorType.FLOAT32: tf.float32, schema.TensorType.INT32: tf.int32, schema.TensorType.BOOL: tf.bool}
_ACTIVATIONS: dict[int, Callable[[tf.Tensor], tf.Tensor]] = {
    schema.ActivationFunctionType.NONE: tf.identity,
    schema.ActivationFunctionType.RELU: tf.nn.relu,
    schema.ActivationFunctionType.RELU6: tf.nn.relu6,
}


class TfliteGraph:
    """The operators and constant tensors of a flatbuffer's first subgraph."""

    def __init__(self, path: Path) -> None:
        model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
        if len(model.subgraphs) != 1:
            raise ValueError(f"{path.name}: expected one subgraph, found {len(model.subgraphs)}")
        self._codes = model.operatorCodes
        self._graph = model.subgraphs[0]
        self.weights: dict[int, np.ndarray] = {}
        half: dict[int, np.ndarray] = {}
        for index, tensor in enumerate(self._graph.tensors):
            data = model.buffers[tensor.buffer].data
            if data is not None and len(data):
                if tensor.type not in _CONSTANT_TYPES:
                    raise ValueError(f"{path.name}: tensor {tensor.name!r} is quantised; only float models")
                shape = [] if tensor.shape is None else tensor.shape
                value = np.frombuffer(bytes(data), dtype=_CONSTANT_TYPES[tensor.type]).reshape(shape)
                (half if tensor.type == schema.TensorType.FLOAT16 else self.weights)[index] = value
        self._widened: set[int] = set()
        for op in self._graph.operators:
            if self._operator_name(op) == "DEQUANTIZE" and int(op.inputs[0]) in half:
                self.weights[int(op.outputs[0])] = half.pop(int(op.inputs[0])).astype(np.float32)
                self._widened.add(int(op.outputs[0]))
        if half:
            raise ValueError(f"{path.name}: float16 tensors read other than through DEQUANTIZE: "
                             f"{[self.tensor_name(i) for i in half]}")

    def tensor_name(self, index: int) -> str:
        return str(self._graph.tensors[index].name.decode())

    @property
    def input_names(self) -> list[str]:
        return [self.tensor_name(i) for i in self._graph.inputs]

    @property
    def output_names(self) -> list[str]:
        return [self.tensor_name(i) for i in self._graph.outputs]

    def operator_names(self) -> list[str]:
        return [self._operator_name(op) for op in self._graph.operators]

    def _operator_name(self, op: Any) -> str:
        code = self._codes[op.opcodeIndex]
        return _OPERATOR_NAMES[max(code.builtinCode, code.deprecatedBuiltinCode)]

    def __call__(self, *inputs: tf.Tensor, weights: Mapping[int, tf.Tensor] | None = None) -> list[tf.Tensor]:
        """Run the graph on ``inputs`` (in the file's input order); the outputs in the file's order.

        ``weights`` replaces the constant tensors by index (e.g. with tf.Variables, which a SavedModel
        stores once instead of copying them into every traced function).
        """
        values: dict[int, tf.Tensor] = dict(weights) if weights is not None else {
            i: tf.constant(w) for i, w in self.weights.items()}
        values.update(zip(self._graph.inputs, inputs, strict=True))
        for name, options, in_indices, out_index in self._steps():
            args = [values[i] for i in in_indices]
            constants = [self.weights.get(i) for i in in_indices]
            values[out_index] = _apply(name, options, args, self._graph.tensors[out_index].shape, constants)
        return [values[i] for i in self._graph.outputs]

    def _steps(self) -> list[tuple[str, Any, list[int], int]]:
        """The operators to replay: (name, options, input indices, output index), with each PReLU that the
        flatbuffer spells as ``relu(x) + c * (x - |x|)`` (five operators) folded back into one ``PRELU``
        (inputs x and c; alpha = 2c), which TensorFlow and the TFLite converter run as a single op."""
        ops = self._graph.operators
        steps = []
        position = 0
        while position < len(ops):
            prelu = self._prelu_at(position)
            if prelu is not None:
                steps.append(("PRELU", None, list(prelu[:2]), prelu[2]))
                position += len(_PRELU_SPELLING)
                continue
            op = ops[position]
            if int(op.outputs[0]) in self._widened:  # a float16 weight's DEQUANTIZE: widened at load time
                position += 1
                continue
            steps.append((self._operator_name(op), op.builtinOptions, [i for i in op.inputs if i >= 0],
                          int(op.outputs[0])))
            position += 1
        return steps

    def _prelu_at(self, position: int) -> tuple[int, int, int] | None:
        """(x, c, output) when the operators from ``position`` on are the five of a spelled-out PReLU."""
        ops = self._graph.operators[position:position + len(_PRELU_SPELLING)]
        if [self._operator_name(op) for op in ops] != list(_PRELU_SPELLING):
            return None
        relu, absolute, difference, scaled, total = ops
        x = relu.inputs[0]
        c = next((i for i in scaled.inputs if i in self.weights), None)
        wired = (list(absolute.inputs) == [x] and list(difference.inputs) == [x, absolute.outputs[0]]
                 and difference.outputs[0] in scaled.inputs and sorted(total.inputs) == sorted(
                     [relu.outputs[0], scaled.outputs[0]]))
        return (int(x), int(c), int(total.outputs[0])) if wired and c is not None else None


def _apply(name: str, options: Any, args: list[tf.Tensor], out_shape: np.ndarray,
           constants: list[np.ndarray | None]) -> tf.Tensor:
    """One TFLite operator as TensorFlow ops (weights laid out as TFLite stores them).

    ``constants``: the file's value of each input that is a constant tensor (None for the others),
    for operators whose parameters are tensors (STRIDED_SLICE's begin, end and strides).
    """
    if name == "CONV_2D":
        x, filters, bias = args
        strides = [1, options.strideH, options.strideW, 1]
        dilations = [1, options.dilationHFactor, options.dilationWFactor, 1]
        out = tf.nn.conv2d(x, tf.transpose(filters, [1, 2, 3, 0]), strides, _PADDING[options.padding],
                           dilations=dilations) + bias
        return _ACTIVATIONS[options.fusedActivationFunction](out)
    if name == "DEPTHWISE_CONV_2D":
        x, filters, bias = args
        channels = int(x.shape[-1])
        kernel = tf.reshape(filters, [filters.shape[1], filters.shape[2], channels, options.depthMultiplier])
        out = tf.nn.depthwise_conv2d(x, kernel, [1, options.strideH, options.strideW, 1], _PADDING[options.padding],
                                     dilations=[options.dilationHFactor, options.dilationWFactor]) + bias
        return _ACTIVATIONS[options.fusedActivationFunction](out)
    if name in ("ADD", "SUB", "MUL"):
        combine = {"ADD": tf.add, "SUB": tf.subtract, "MUL": tf.multiply}[name]
        return _ACTIVATIONS[options.fusedActivationFunction](combine(args[0], args[1]))
    if name == "PRELU":
        x, c = args
        # Keras PReLU's form, alpha shaped (1, 1, C): the TFLite converter fuses it into one PRELU operator.
        alpha = tf.reshape(2.0 * c, [1, 1, -1])
        return tf.nn.relu(x) + -alpha * tf.nn.relu(-x)
    if name == "RELU":
        return tf.nn.relu(args[0])
    if name == "ABS":
        return tf.abs(args[0])
    if name == "RESHAPE":
        return tf.reshape(args[0], [-1, *[int(d) for d in out_shape[1:]]])  # the batch stays free
    if name == "LEAKY_RELU":
        return tf.nn.leaky_relu(args[0], alpha=float(options.alpha))
    if name == "FULLY_CONNECTED":
        if options.keepNumDims or options.weightsFormat != schema.FullyConnectedOptionsWeightsFormat.DEFAULT:
            raise ValueError("TFLite operator FULLY_CONNECTED with kept dimensions or shuffled weights "
                             "is not supported")
        x, weights = args[0], args[1]  # weights (outputs, inputs); the input is flattened to (-1, inputs)
        out = tf.matmul(tf.reshape(x, [-1, int(weights.shape[1])]), weights, transpose_b=True)
        if len(args) > 2:
            out = out + args[2]
        return _ACTIVATIONS[options.fusedActivationFunction](out)
    if name in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        pool = tf.nn.max_pool2d if name == "MAX_POOL_2D" else tf.nn.avg_pool2d
        # TFLite's average, like TensorFlow's, counts only the window's cells inside the image.
        out = pool(args[0], [options.filterHeight, options.filterWidth], [options.strideH, options.strideW],
                   _PADDING[options.padding])
        return _ACTIVATIONS[options.fusedActivationFunction](out)
    if name == "STRIDED_SLICE":
        begin, end, step = constants[1], constants[2], constants[3]
        if begin is None or end is None or step is None:
            raise ValueError("TFLite operator STRIDED_SLICE with computed bounds is not supported")
        if options.ellipsisMask or options.newAxisMask or options.offset or not (
                options.beginMask & 1 and options.endMask & 1 and step[0] == 1 and not options.shrinkAxisMask & 1):
            raise ValueError("TFLite operator STRIDED_SLICE that cuts the batch dimension is not supported")
        return tf.strided_slice(args[0], begin.tolist(), end.tolist(), step.tolist(), begin_mask=options.beginMask,
                                end_mask=options.endMask, shrink_axis_mask=options.shrinkAxisMask)
    if name == "CONCATENATION":
        return _ACTIVATIONS[options.fusedActivationFunction](tf.concat(args, axis=options.axis))
    if name == "GREATER_EQUAL":
        return tf.greater_equal(args[0], args[1])
    if name == "LESS":
        return tf.less(args[0], args[1])
    if name == "CAST":
        if options.inDataType not in _DTYPES or options.outDataType not in _DTYPES:
            raise ValueError("TFLite operator CAST between these types is not supported")
        return tf.cast(args[0], _DTYPES[options.outDataType])
    raise ValueError(f"TFLite operator {name} is not supported by facemodels.tflite_graph")
