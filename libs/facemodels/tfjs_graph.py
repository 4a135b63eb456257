"""Rebuild a TensorFlow.js *graph model* (model JSON + weight shards) as a TensorFlow graph.

TFJS graph models are a GraphDef in JSON plus binary weight shards. We turn every weight into a
``Const`` node, repair the two op-level differences between TFJS and current TensorFlow, and hand
back a callable concrete function: with TFJS's fused ops kept (what TensorFlow runs best), or
with every fused op split into plain ops (what the TFLite converter accepts). The route via the
``tensorflowjs`` package pulls in JAX and friends and needs patching, so this small reader is
the maintained path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from google.protobuf import json_format

_NUMPY_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_QUANTIZED_DTYPES = {"uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}


def read_weights(model_json: dict[str, Any], model_dir: Path) -> dict[str, np.ndarray]:
    """Decode every tensor of the weights manifest, undoing uint8/uint16/float16 quantisation."""
    weights: dict[str, np.ndarray] = {}
    for group in model_json["weightsManifest"]:
        buffer = b"".join((model_dir / path).read_bytes() for path in group["paths"])
        offset = 0
        for spec in group["weights"]:
            shape = [int(d) for d in spec["shape"]]
            count = int(np.prod(shape)) if shape else 1
            quant = spec.get("quantization")
            stored = _QUANTIZED_DTYPES[quant["dtype"]] if quant else _NUMPY_DTYPES[spec["dtype"]]
            nbytes = count * np.dtype(stored).itemsize
            raw: np.ndarray = np.frombuffer(buffer, dtype=stored, count=count, offset=offset)
            offset += nbytes
            if quant and quant["dtype"] == "float16":
                values = raw.astype(np.float32)
            elif quant:
                values = raw.astype(np.float32) * quant["scale"] + quant["min"]
            else:
                values = raw.copy()
            weights[spec["name"]] = values.astype(_NUMPY_DTYPES[spec["dtype"]]).reshape(shape)
        if offset != len(buffer):
            raise ValueError(f"weight shards of {model_dir} hold {len(buffer)} bytes, manifest uses {offset}")
    return weights


def _repair_node(node: tf.compat.v1.NodeDef) -> None:
    """Bring TFJS-flavoured nodes back to what current TensorFlow accepts."""
    if node.op == "FusedDepthwiseConv2dNative":
        node.op = "_FusedDepthwiseConv2dNative"
    if node.op in ("_FusedConv2D", "_FusedDepthwiseConv2dNative"):
        num_args = int(node.attr["num_args"].i)
        if "TArgs" not in node.attr:
            node.attr["TArgs"].list.type.extend([node.attr["T"].type] * num_args)
    # TFJS writes a device string of its own; strip it so TF places ops itself.
    node.device = ""


def _float_node(name: str, op: str, inputs: list[str]) -> tf.compat.v1.NodeDef:
    node = tf.compat.v1.NodeDef(name=name, op=op, input=inputs)
    node.attr["T"].type = tf.float32.as_datatype_enum  # TFJS omits T on ops it knows are float-only
    return node


def _prelu_nodes(name: str, x: str, alpha: str) -> list[tf.compat.v1.NodeDef]:
    """relu(x) - alpha * relu(-x), ending in a node called ``name``."""
    return [
        _float_node(f"{name}/positive", "Relu", [x]),
        _float_node(f"{name}/negated", "Neg", [x]),
        _float_node(f"{name}/negative", "Relu", [f"{name}/negated"]),
        _float_node(f"{name}/scaled", "Mul", [alpha, f"{name}/negative"]),
        _float_node(name, "Sub", [f"{name}/positive", f"{name}/scaled"]),
    ]


_FUSED_MAIN_OPS = {"_FusedConv2D": "Conv2D", "_FusedDepthwiseConv2dNative": "DepthwiseConv2dNative",
                   "_FusedMatMul": "MatMul"}
_MAIN_OP_ATTRS = ("strides", "padding", "dilations", "data_format", "explicit_paddings", "transpose_a", "transpose_b")


def _unfuse(node: tf.compat.v1.NodeDef, fused: list[str]) -> list[tf.compat.v1.NodeDef]:
    """Split a fused conv/matmul (+ BiasAdd, + Relu or Prelu) into plain ops, ending in ``node.name``."""
    if fused not in (["BiasAdd"], ["BiasAdd", "Relu"], ["BiasAdd", "Prelu"]):
        raise ValueError(f"{node.name}: fused ops {fused} are not supported")
    main = _float_node(f"{node.name}/{_FUSED_MAIN_OPS[node.op]}", _FUSED_MAIN_OPS[node.op], list(node.input[:2]))
    for key in _MAIN_OP_ATTRS:
        if key in node.attr:
            main.attr[key].CopyFrom(node.attr[key])
    if fused == ["BiasAdd"]:
        return [main, _float_node(node.name, "BiasAdd", [main.name, node.input[2]])]
    bias = _float_node(f"{node.name}/bias", "BiasAdd", [main.name, node.input[2]])
    if fused[1] == "Relu":
        return [main, bias, _float_node(node.name, "Relu", [bias.name])]
    return [main, bias, *_prelu_nodes(node.name, bias.name, node.input[3])]


def _expand_fused_ops(graph_def: tf.compat.v1.GraphDef, plain: bool) -> None:
    """Replace TFJS's ``Prelu``, alone or fused (TensorFlow has no such op), by plain ops; with ``plain``
    every other fused op too.

    Plain graphs are only for the TFLite converter: TensorFlow 2.21's grappler remapper crashes on
    BlazeFace's plain graph (Conv2D, BiasAdd, AddV2, Relu) when it tries to fuse it again.
    """
    expanded: list[tf.compat.v1.NodeDef] = []
    for node in graph_def.node:
        fused = [op.decode() for op in node.attr["fused_ops"].list.s] if node.op in _FUSED_MAIN_OPS else []
        if node.op == "Prelu":
            expanded += _prelu_nodes(node.name, node.input[0], node.input[1])
        elif fused and (plain or "Prelu" in fused):
            expanded += _unfuse(node, fused)
        else:
            expanded.append(node)
    del graph_def.node[:]
    graph_def.node.extend(expanded)


def _free_batch_dimension(graph_def: tf.compat.v1.GraphDef) -> None:
    """Let a graph exported for batch 1 take any batch: placeholders and reshape targets get -1."""
    reshape_shapes = {node.input[1] for node in graph_def.node if node.op == "Reshape"}
    for node in graph_def.node:
        if node.op == "Placeholder" and node.attr["shape"].shape.dim:
            node.attr["shape"].shape.dim[0].size = -1
        elif node.name in reshape_shapes and node.op == "Const":
            shape = tf.make_ndarray(node.attr["value"].tensor)
            if shape.ndim == 1 and shape.size > 1 and shape[0] == 1:
                shape[0] = -1
                node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(shape))


def build_graph_def(model_path: Path, plain: bool = False) -> tuple[tf.compat.v1.GraphDef, dict[str, Any]]:
    """Return the frozen GraphDef (weights as constants, any batch size; ``plain``: no fused ops) and
    the parsed model JSON."""
    model_json = json.loads(model_path.read_text())
    model_dir = model_path.parent
    graph_def = json_format.ParseDict(model_json["modelTopology"], tf.compat.v1.GraphDef(),
                                      ignore_unknown_fields=True)
    weights = read_weights(model_json, model_dir)
    for node in graph_def.node:
        if node.name in weights:
            value = weights.pop(node.name)
            node.op = "Const"
            node.ClearField("input")
            node.attr.clear()
            node.attr["dtype"].type = tf.as_dtype(value.dtype).as_datatype_enum
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
        _repair_node(node)
    if weights:
        raise ValueError(f"weights without a graph node in {model_dir}: {sorted(weights)[:5]}")
    _expand_fused_ops(graph_def, plain)
    _free_batch_dimension(graph_def)
    return graph_def, model_json


def load_function(model_path: Path, inputs: Sequence[str], outputs: Sequence[str], plain: bool = False) -> Any:
    """Import the model as a pruned concrete function ``f(*inputs) -> list(outputs)``."""
    graph_def, _ = build_graph_def(model_path, plain)

    def _import() -> None:
        tf.compat.v1.import_graph_def(graph_def, name="")

    wrapped = tf.compat.v1.wrap_function(_import, [])
    graph = wrapped.graph
    return wrapped.prune(
        feeds=[graph.get_tensor_by_name(_tensor_name(n)) for n in inputs],
        fetches=[graph.get_tensor_by_name(_tensor_name(n)) for n in outputs],
    )


def _tensor_name(name: str) -> str:
    return name if ":" in name else f"{name}:0"
