"""Every registered env x action mode x backend (the real ones included): identical spaces, observations inside
them, NaN/inf actions rejected by the env before the backend is commanded, and one interpolation everywhere.

The real backends run against their emulators as a user starts them: `robotlearn emulate arm` on a pty and the
MAVLink vehicle over UDP, one of each for the whole module. Envs are built once per combination (a module-scoped,
parametrized fixture) and closed before the next, since two hosts on one bus or one UDP port would collide.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from test_quad_mavlink import FAST_RESET
from test_quad_mavlink import emulator as quad_emulator_process
from test_real_arm import Emulator as ArmEmulator

from robotlearn.backends import backend_names
from robotlearn.core.config import load_config
from robotlearn.core.robot_config import TaskConfig, load_robot_spec
from robotlearn.envs import ENV_TASK_CONFIGS, NAMESPACE, make_env
from robotlearn.robots import ROBOT_MODELS

ARM_CAMERAS = ("scene", "wrist")
# The ros2 backend talks to a running bridge node; tests/test_ros2.py starts one and checks its spaces against the
# sims' (check_env included). Every other registered backend is built here.
NEEDS_A_ROS_GRAPH = {"ros2"}


def _action_modes(kind: str) -> tuple[str, ...]:
    module_name, cls_name = ROBOT_MODELS[kind].split(":")
    return getattr(importlib.import_module(module_name), cls_name).ACTION_MODES


def _combinations() -> list[tuple[str, str, str, str]]:
    """(env id, robot kind, action mode, backend) for everything the registry can build."""
    out = []
    for env_name, task in ENV_TASK_CONFIGS.items():
        kind = load_robot_spec(load_config(TaskConfig, "tasks", task).robot).kind
        for mode in _action_modes(kind):
            for backend in backend_names(kind):
                if backend in NEEDS_A_ROS_GRAPH:
                    continue
                out.append((f"{NAMESPACE}/{env_name}", kind, mode, backend))
    return out


COMBINATIONS = _combinations()


def test_the_matrix_covers_every_robot_kind_mode_and_backend():
    """Guards the parametrization itself: a registry change must not quietly shrink what is tested."""
    assert {(k, m, b) for _, k, m, b in COMBINATIONS} >= {
        (k, m, b) for k in ("arm", "quadrotor") for m in _action_modes(k) for b in ("mujoco", "pybullet", "real")}
    assert {e for e, *_ in COMBINATIONS} == {f"{NAMESPACE}/{e}" for e in ENV_TASK_CONFIGS}


@pytest.fixture(scope="module")
def arm_emulator(tmp_path_factory):
    emu = ArmEmulator(tmp_path_factory.mktemp("arm") / "arm", "--cameras", ",".join(ARM_CAMERAS),
                      "--camera-fps", "10")
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def quad_emulator(tmp_path_factory):
    with quad_emulator_process(tmp_path_factory.mktemp("quad")) as (proc, port):
        yield proc, port


def _build(request, env_id: str, kind: str, mode: str, backend: str):
    """The env as gym.make builds it; real backends get their emulator's address, quads a short reset."""
    task = ENV_TASK_CONFIGS[env_id.split("/", 1)[1]]
    options, overrides, cameras = {}, [f"action_mode={mode}"], ()
    if kind == "arm":
        cameras = ARM_CAMERAS
        if backend == "real":
            options["port"] = str(request.getfixturevalue("arm_emulator").link)
    else:
        overrides += FAST_RESET
        if backend == "real":
            options["connection"] = f"udpin:127.0.0.1:{request.getfixturevalue('quad_emulator')[1]}"
    return make_env(task, backend=backend, cameras=cameras, overrides=overrides, backend_options=options)


@pytest.fixture(scope="module", params=COMBINATIONS, ids=["-".join((e.split("/")[1], m, b)) for e, _, m, b in COMBINATIONS])
def env(request):
    env_id, kind, mode, backend = request.param
    built = _build(request, env_id, kind, mode, backend)
    built.reset(seed=0)
    yield built
    built.close()


@pytest.fixture(scope="module")
def reference_spaces():
    """(observation_space, action_space) of each (env id, action mode) on MuJoCo, built once."""
    cache: dict[tuple[str, str], tuple] = {}

    def get(request, env_id: str, kind: str, mode: str):
        if (env_id, mode) not in cache:
            ref = _build(request, env_id, kind, mode, "mujoco")
            cache[env_id, mode] = (ref.observation_space, ref.action_space)
            ref.close()
        return cache[env_id, mode]

    return get


def test_spaces_equal_and_observations_inside_them(env, request, reference_spaces):
    env_id, kind, mode, backend = request.node.callspec.params["env"]
    obs_space, act_space = reference_spaces(request, env_id, kind, mode)
    assert env.observation_space == obs_space, (env_id, mode, backend)
    assert env.action_space == act_space, (env_id, mode, backend)
    obs, _ = env.reset(seed=1)
    assert set(obs) == set(obs_space.spaces)
    for key, value in obs.items():
        assert value.dtype == (np.uint8 if key.startswith("images/") else np.float32), key
        assert obs_space[key].contains(value), (key, value)


def test_nan_actions_raise_before_the_backend_is_commanded(env, request, monkeypatch):
    """The env's own check, not the backend's: a spy on the (real) backend's command must see nothing."""
    backend = env.unwrapped.backend
    sent: list[dict] = []
    command = backend.command

    def recording_command(cmd):
        sent.append(cmd)
        return command(cmd)

    monkeypatch.setattr(backend, "command", recording_command)
    n = env.action_space.shape[0]
    for position in (0, n - 1):
        for bad in (np.nan, np.inf, -np.inf):
            action = np.zeros(n, np.float32)
            action[position] = bad
            with pytest.raises(ValueError, match="NaN/inf"):
                env.step(action)
    assert sent == [], "a non-finite action reached backend.command"
    env.step(np.zeros(n, np.float32))  # the spy is on the path a valid action takes
    assert len(sent) == 1
