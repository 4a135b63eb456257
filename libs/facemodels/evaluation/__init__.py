"""Accuracy evaluation on labelled face data (LFW layout for verification, WIDER FACE for detection)."""
