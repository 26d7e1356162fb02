"""Object pose from cameras: fiducial markers on scene objects (rendered by both sims, printed on the real
ones), camera models from the robot spec or a ChArUco calibration, and the perception a real backend's
object observations come from (see object_perception.py)."""
