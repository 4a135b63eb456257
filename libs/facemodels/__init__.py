"""faceauth's face models: detection, alignment and embedding on TensorFlow, free of gRPC and Flask.

The services import this package; it loads each SavedModel once per process and is thread-safe.
"""
