"""What the detector and embedder gRPC services share: batching, server bootstrap, metrics, client.

Kept apart from ``facemodels`` so the models stay free of gRPC, and apart from the services so both
serve, log, measure and shut down the same way.
"""

from faceauth.images import DEFAULT_LIMITS

# Room for a photo at the decoder's size limit plus the rest of the message (client and server).
MAX_MESSAGE_BYTES = DEFAULT_LIMITS.max_bytes + (1 << 20)
