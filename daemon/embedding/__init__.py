"""Face embeddings: aligned crops in, L2-normalised identity vectors out."""
