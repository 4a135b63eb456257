"""faceauth's embedder service: gRPC EmbedderService in front of facemodels.embedder."""
