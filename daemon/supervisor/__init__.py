"""The supervisor: starts, watches and restarts the daemon's processes, and talks to systemd."""
