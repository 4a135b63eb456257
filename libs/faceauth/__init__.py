"""faceauth's shared package: what the detector, embedder and auth services have in common."""
