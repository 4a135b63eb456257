"""faceauth's detector service: gRPC DetectorService in front of facemodels.detector."""
