"""INT8 calibration: calibration sets, static quantisation, and the accuracy gate."""
