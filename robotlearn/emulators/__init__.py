"""Device emulators: the robot's side of the real wire protocols (servo bus on a pty, MAVLink on UDP,
MJPEG over HTTP), driven by a physics sim with a configurable reality gap."""
