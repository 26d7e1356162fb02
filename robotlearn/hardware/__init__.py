"""Real-hardware backends (servo-bus arm, MAVLink quadrotor), calibration and camera drivers, plus servo control
tables as data (`servo_tables`) and serial port discovery (`ports`)."""
