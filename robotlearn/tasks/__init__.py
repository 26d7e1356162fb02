"""Tasks: what the robot should do (reward, success, task observations). Registered in robotlearn.envs."""
