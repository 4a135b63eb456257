"""Device set-up from the environment, before the first TensorFlow op runs.

CUDA_VISIBLE_DEVICES is honoured by CUDA itself (Kubernetes' device plugin sets it); here GPUs get
memory growth so TensorFlow does not grab all their memory at start, CPU thread pools can be sized
to the pod's CPU limit (TensorFlow otherwise sizes them to the node's cores) and mixed precision can
be switched on. On a machine without a GPU all of this is harmless.
"""

from __future__ import annotations

import logging
import os

import tensorflow as tf

from faceauth.config import env_bool, env_int

log = logging.getLogger(__name__)


def configure_devices() -> None:
    """Apply FACEAUTH_MIXED_PRECISION, FACEAUTH_INTRA_OP_THREADS and FACEAUTH_INTER_OP_THREADS."""
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    intra_op = env_int("FACEAUTH_INTRA_OP_THREADS", 0)  # 0: TensorFlow's default
    inter_op = env_int("FACEAUTH_INTER_OP_THREADS", 0)
    if intra_op:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    if inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    mixed_precision = env_bool("FACEAUTH_MIXED_PRECISION", False)
    if mixed_precision:
        # Grappler rewrites the loaded SavedModel graphs: float16 on GPUs, bfloat16 through oneDNN on
        # CPUs that have it. A Keras dtype policy would not reach an already-traced SavedModel.
        rewrite = "auto_mixed_precision" if gpus else "auto_mixed_precision_onednn_bfloat16"
        tf.config.optimizer.set_experimental_options({rewrite: True})
    log.info("devices configured", extra={
        "gpus": [gpu.name for gpu in gpus], "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "intra_op_threads": intra_op, "inter_op_threads": inter_op, "mixed_precision": mixed_precision})
