"""Real-hardware side: servo bus/loop wiring (`_rt.ServoBus`, `_rt.ControlLoop`), servo control tables as
data (`servo_tables`), serial port discovery (`ports`), the arm and quadrotor backends, and cameras."""
