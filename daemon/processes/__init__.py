"""The processes' common ground: the child base, shared flags and the typed channels between processes.

Every process role imports this layer; it imports none of them.
"""
