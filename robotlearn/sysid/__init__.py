"""System identification: excite the robot, fit physical parameters in sim, write a calib.yaml.

Never imports robotlearn.emulators (the emulated robot's gap is hidden by definition; an import-graph
test enforces it). The parameters are sim/physical.py's vocabulary, so an estimate reads key for key like
the emulator's reality-gap config and applies to a sim env with ``calibration=calib.yaml``.
"""
