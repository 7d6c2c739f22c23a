"""The gallery of enrolled people: a YAML spec, an embedding cache and a searchable index."""
