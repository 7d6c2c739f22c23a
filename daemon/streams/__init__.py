"""Camera streams: open an RTSP URL, a file or a V4L2 device and decode frames, reconnecting on failure."""
