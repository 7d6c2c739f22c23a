"""Model files: fetching public weights, converting them to ONNX, manifests, and inference backends."""
