"""Simulated backends (MuJoCo, PyBullet) sharing one robot description, one scene and one servo model."""
