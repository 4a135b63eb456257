"""What the detector and embedder gRPC services share: batching, server bootstrap, metrics, client.

Kept apart from ``facemodels`` so the models stay free of gRPC, and apart from the services so both
serve, log, measure and shut down the same way.
"""
