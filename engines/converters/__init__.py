"""Pure numpy functions that turn raw model outputs into boxes, landmarks and embeddings."""
