"""One module per area of the API; each defines `router`."""
