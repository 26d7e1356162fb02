"""System identification: the parameter registry on both sims, the estimator on data with a known answer,
the calibration / domain-randomization options, and the CLI's one-line errors."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import yaml

from robotlearn.backends import make_backend
from robotlearn.core.config import ConfigError
from robotlearn.core.robot_config import load_robot_spec
from robotlearn.sim.physical import ArmPhysicalParams, Calibration, load_calibration
from robotlearn.sysid.active import nominal_recording
from robotlearn.sysid.collect import collect
from robotlearn.sysid.data import load_sysid_data
from robotlearn.sysid.estimator import (
    NOISE_FLOOR,
    NotIdentifiable,
    fit,
    jacobian,
    outlier_segments,
    parameter_std,
)
from robotlearn.sysid.excitation import Multisine
from robotlearn.sysid.registry import load_registry, parameter_names
from robotlearn.sysid.simulate import Replayer

# Values far enough from nominal that each parameter visibly changes a 2 s sweep.
PERTURBED = {"link_mass_scale": 2.0, "joint_damping_scale": 3.0, "joint_friction_scale": 3.0,
             "armature_scale": 2.5, "servo_kp_scale": 0.6, "servo_kd_scale": 1.8, "latency_s": 0.01,
             "backlash": 0.02}


@pytest.fixture(scope="module")
def spec():
    return load_robot_spec("arm6")


def sweep(spec, backend: str, calib_path=None) -> np.ndarray:
    """Joint positions over a 2 s multi-joint sweep from home (every step)."""
    b = make_backend(spec, backend, {"calibration": str(calib_path)} if calib_path else {})
    try:
        home = np.array([0.0, 0.3, -0.3, 0.0, 1.6, 0.0, 0.04, 0.04])
        b.reset(np.random.default_rng(0), {"joint_pos": home})
        rows = []
        for k in range(20):
            target = home.copy()
            target[:6] += 0.25 * np.sin(0.35 * (k + 1) + np.arange(6))
            b.command(target)
            b.advance()
            rows.append(b.read()["joint_pos"][:6])
        return np.array(rows)
    finally:
        b.close()


@pytest.mark.parametrize("name", parameter_names("arm"))
def test_registry_parameter_changes_both_sims_alike(spec, tmp_path, name):
    """Each parameter, applied through calibration=, moves MuJoCo and PyBullet the same way.

    Compared as rms over the six arm joints. Measured (this sweep): mismatch 2-5 % of the effect for masses,
    damping, servo gains and latency; 18 % for Coulomb friction and 24 % for armature, almost all of it
    at the wrist roll, whose friction dead band the two engines' friction solvers end at different points
    (tests/test_sim_backends.py) and where Bullet's armature correction lags one tick."""
    registry = load_registry("arm", [name])
    calib = tmp_path / "calib.yaml"
    calib.write_text(Calibration(params=registry.to_params([PERTURBED[name.partition(".")[0]]])).to_yaml())
    effect = {b: sweep(spec, b, calib) - sweep(spec, b) for b in ("mujoco", "pybullet")}
    size = np.sqrt(np.mean(effect["mujoco"] ** 2))
    mismatch = np.sqrt(np.mean((effect["mujoco"] - effect["pybullet"]) ** 2))
    print(f"{name}: effect {size * 1e3:.3f} mrad, engines differ by {mismatch * 1e3:.3f} mrad")
    assert size > 2e-4, f"{name} had no visible effect"
    assert mismatch < 0.3 * size


@pytest.mark.parametrize("backend", ["mujoco", "pybullet"])
def test_latency_between_physics_ticks_is_between_its_neighbours(spec, tmp_path, backend):
    """latency_s is not rounded to physics ticks (2 ms at 500 Hz): 3 ms lands between 2 and 4 ms, and the
    response moves smoothly with latency, so a fit's loss has a slope in latency rather than a staircase."""
    registry = load_registry("arm", ["latency_s"])

    def run(latency: float) -> np.ndarray:
        calib = tmp_path / f"latency-{latency}.yaml"
        calib.write_text(Calibration(params=registry.to_params([latency])).to_yaml())
        return sweep(spec, backend, calib)

    two, three, four = run(0.002), run(0.003), run(0.004)
    assert np.sqrt(np.mean((four - two) ** 2)) > 1e-3  # 2 ms of latency is visible on this sweep
    # three lies near the midpoint of its neighbours (the response is close to linear over 2 ms)
    midpoint = (two + four) / 2
    assert np.sqrt(np.mean((three - midpoint) ** 2)) < 0.1 * np.sqrt(np.mean((four - two) ** 2))
    assert np.sqrt(np.mean((run(0.0031) - three) ** 2)) > 0  # a tenth of a tick still changes the rollout


#: MuJoCo data with known scales and a latency of whole physics ticks (3 each way at 500 Hz)
KNOWN = {"joint_damping_scale": 1.5, "joint_friction_scale": 2.0, "servo_kp_scale": 0.85, "servo_kd_scale": 1.15,
         "latency_s": 0.006}


@pytest.fixture(scope="module")
def known_recording(tmp_path_factory):
    folder = tmp_path_factory.mktemp("known")
    (folder / "truth.yaml").write_text(yaml.safe_dump(KNOWN))
    data = collect("mujoco", {"calibration": str(folder / "truth.yaml")}, 7, "random", seed=3, progress=False)
    return load_sysid_data(data.save(folder / "rec"))


def test_estimator_recovers_known_parameters_past_a_disturbed_segment(known_recording):
    """The known MuJoCo data, fit on MuJoCo with a small budget, after something the model does not have
    (a hand pushing the elbow 30 mrad off for a second, in the readings) disturbed one segment: the fit
    leaves that segment out, names it, and recovers the rest."""
    joint_pos = known_recording.joint_pos.copy()
    joint_pos[31:41, 2] += 0.03
    data = dataclasses.replace(known_recording, joint_pos=joint_pos)
    registry = load_registry("arm", list(KNOWN))
    replayer = Replayer(data, "mujoco")
    try:
        with pytest.raises(ValueError, match="--restarts must be at least 1"):
            fit(replayer, registry, restarts=0)
        result = fit(replayer, registry, generations=4, progress=False, restarts=2)
        disturbed = [(s, n) for s, n in replayer.segments if s < 41 and s + n > 30]
    finally:
        replayer.close()
    estimate = dict(zip(result.names, result.estimate, strict=True))
    print({k: round(float(v), 4) for k, v in estimate.items()}, result.loss, result.prior_loss, result.outliers)
    assert result.outliers == disturbed
    for key, value in KNOWN.items():
        if key == "latency_s":
            assert abs(estimate[key] - value) <= 0.002
        else:
            assert estimate[key] == pytest.approx(value, rel=0.05), key
    assert np.all(result.std > 0) and result.loss < 0.01 * result.prior_loss
    assert len(result.restart_losses) == 2 and max(result.restart_losses) < result.prior_loss


def test_outlier_segments_stand_out_against_the_median():
    """Segments (3, 2, 3 rows) whose mean square is over 25x the median's are outliers, unless too many are."""
    rows = np.array([[1.0], [1.0], [1.0], [6.0], [6.0], [0.5], [1.0], [1.5]])
    assert outlier_segments(rows, [3, 2, 3]).tolist() == [False, True, False]
    assert outlier_segments(rows, [3, 2, 3], ratio=40).tolist() == [False, False, False]
    assert outlier_segments(rows, [3, 2, 3], max_share=0.3).tolist() == [False, False, False]


def test_a_replay_runs_the_round_trip_latency_on_its_commands(known_recording):
    """A segment starts from a reading that is already one latency old, so the robot's state ran a round trip
    (command and sensing latency) before the new command took hold: replayed so, data with a whole-tick
    latency each way replay at the truth to the drive's start-up transient (measured 1.4e-5 rad); replayed
    with the latency each way, as the env runs it, they were off by 1.2e-3 rad."""
    replayer = Replayer(known_recording, "mujoco")
    try:
        error = np.abs(replayer.simulate(ArmPhysicalParams(**KNOWN)) - replayer.measured)[:, :replayer.n_arm]
    finally:
        replayer.close()
    assert error.max() < 1e-4, error.max()


def test_a_replay_leaves_out_a_step_the_host_overran(spec, tmp_path):
    """A host that missed a tick made that step two periods long; a replay steps one. The recorded tick
    times mark it, and no replayed segment holds it, so nominal data replays on the nominal sim exactly;
    replayed blind (no timestamps, as older recordings are), the overrun shows as error."""
    from robotlearn.sysid.data import SysidData

    b = make_backend(spec, "mujoco", {})
    home = np.array([0.0, 0.3, -0.3, 0.0, 1.6, 0.0, 0.04, 0.04])
    b.reset(np.random.default_rng(0), {"joint_pos": home})
    commands, states, stamps = [], [b.read()], [0.0]
    try:
        for k in range(40):
            target = home.copy()
            target[:6] += 0.25 * np.sin(0.35 * (k + 1) + np.arange(6))
            b.command(target)
            info = b.advance()
            if k == 25:
                info = b.advance()  # the overrun: the host came back a period late
            commands.append(target)
            states.append(b.read())
            stamps.append(info["timestamp"])
    finally:
        b.close()
    data = SysidData.from_states(commands, states, spec.control_hz, spec.name, {}, stamps)
    data.save(tmp_path / "rec")
    loaded = load_sysid_data(tmp_path / "rec")
    np.testing.assert_array_equal(loaded.timestamps, data.timestamps)
    assert np.flatnonzero(~loaded.regular_steps()).tolist() == [25]
    errors = {}
    for name, recording in (("marked", loaded), ("blind", dataclasses.replace(loaded, timestamps=None))):
        replayer = Replayer(recording, "mujoco", effort=False)
        try:
            if name == "marked":
                assert not any(s <= 25 < s + n for s, n in replayer.segments) and (26, 14) in replayer.segments
            errors[name] = np.abs(replayer.simulate(ArmPhysicalParams()) - replayer.measured).max()
        finally:
            replayer.close()
    assert errors["marked"] < 1e-6 < 1e-2 < errors["blind"], errors


def test_uninformative_data_name_the_parameters(spec):
    """The arm holding still says nothing about damping or servo kd: fit refuses and names them."""
    registry = load_registry("arm", ["joint_damping_scale", "servo_kd_scale"])
    from robotlearn.robots.arm import ArmModel

    robot = ArmModel(spec, "joint_delta")
    center = robot.home_state()["joint_pos"][:6]
    still = Multisine(center, np.zeros((6, 1)), np.ones((6, 1)), np.zeros((6, 1)))
    replayer = Replayer(nominal_recording(still, spec, robot, "mujoco", 3.0), "mujoco")
    try:
        with pytest.raises(NotIdentifiable, match="joint_damping_scale.*servo_kd_scale"):
            fit(replayer, registry, generations=1, progress=False)
    finally:
        replayer.close()


def test_present_current_makes_the_link_masses_identifiable(tmp_path):
    """The stiff servo loops hold the pose against a heavier upper arm or forearm within a fraction of an
    encoder tick, so positions alone leave those masses unidentifiable; the present current the recording
    now carries shows the torque that holds them. It survives save/load; a recording without it (older
    files) still loads and fits on positions."""
    data = collect("mujoco", {}, 4, "random", seed=2, progress=False)
    loaded = load_sysid_data(data.save(tmp_path / "rec"))
    assert loaded.joint_effort is not None and np.array_equal(loaded.joint_effort, data.joint_effort)
    registry = load_registry("arm", ["link_mass_scale.upper_arm_link", "link_mass_scale.forearm_link"])
    rel_std = {}
    for effort in (False, True):
        replayer = Replayer(loaded, "mujoco", effort=effort)
        try:
            _, jac = jacobian(replayer, registry, registry.to_unit(registry.prior))
        finally:
            replayer.close()
        rel_std[effort] = parameter_std(jac, NOISE_FLOOR**2) / registry.prior
    print("relative std of the two masses, positions only / with present current:", rel_std)
    assert np.all(rel_std[False] > 0.1), "positions alone should not pin the masses down"
    assert np.all(rel_std[True] < 0.05)  # measured 2.8 / 1.7 % (4 s), against 44 / 26 % without
    with np.load(tmp_path / "rec" / "sysid.npz") as npz:
        np.savez(tmp_path / "rec" / "sysid.npz", **{k: npz[k] for k in npz.files if k != "joint_effort"})
    old = load_sysid_data(tmp_path / "rec")
    replayer = Replayer(old, "mujoco")
    replayer.close()
    assert old.joint_effort is None and not replayer.effort


def test_domain_randomization_samples_around_the_calibration(spec, tmp_path):
    calib = tmp_path / "calib.yaml"
    calib.write_text(Calibration(params=load_registry("arm", ["servo_kp_scale"]).to_params([0.8]),
                                 uncertainty={"servo_kp_scale": 0.05}).to_yaml())
    nominal_kp = spec.joints[1].servo_kp
    backend = make_backend(spec, "mujoco", {"domain_randomization": str(calib)})
    try:
        scales = []
        for seed in range(8):
            backend.reset(np.random.default_rng(seed), {})
            scales.append(backend.spec.joints[1].servo_kp / nominal_kp)
    finally:
        backend.close()
    assert len(set(np.round(scales, 6))) == 8
    assert 0.7 < np.mean(scales) < 0.9 and 0.01 < np.std(scales) < 0.12
    fixed = make_backend(spec, "pybullet", {"calibration": str(calib)})
    try:
        fixed.reset(np.random.default_rng(5), {})
        assert fixed.spec.joints[1].servo_kp == pytest.approx(0.8 * nominal_kp)
    finally:
        fixed.close()


def test_bad_calibration_files_are_one_line_errors(spec, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("servo_kp_scale: -1\n")
    with pytest.raises(ConfigError, match="servo_kp_scale"):
        make_backend(spec, "mujoco", {"calibration": str(bad)})
    bad.write_text("mass_scale: 1.1\n")  # a quadrotor key on an arm
    with pytest.raises(ConfigError, match="mass_scale"):
        load_calibration(bad, "arm")
    with pytest.raises(ConfigError, match="no such file"):
        make_backend(spec, "pybullet", {"calibration": str(tmp_path / "missing.yaml")})
    with pytest.raises(ConfigError, match="latency_s"):
        bad.write_text("latency_s: 0.09\n")  # two 90 ms delays do not fit one 100 ms control period
        make_backend(spec, "mujoco", {"calibration": str(bad)})


def robotlearn(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robotlearn.cli.main", "sysid", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def test_cli_fit_with_no_restart_is_one_line(known_recording, tmp_path):
    folder = known_recording.save(tmp_path / "rec")
    result = robotlearn("fit", str(folder), "--restarts", "0", "--out", "c.yaml", cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "--restarts must be at least 1" in lines[0], result.stderr
    assert not (tmp_path / "c.yaml").exists()


def test_cli_errors_are_one_line(tmp_path):
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "sysid.npz").write_bytes(b"not a zip")
    (tmp_path / "corrupt" / "meta.json").write_text('{"control_hz": 10, "robot": "arm6"}')
    cases = [
        (["fit", str(tmp_path / "nothing"), "--out", "c.yaml"], "not a sysid recording"),
        (["fit", str(tmp_path / "corrupt"), "--out", "c.yaml"], "corrupt sysid recording"),
        (["collect", "--backend", "mujoco", "--seconds", "0.5", "--out", "x"], "--seconds"),
        (["collect", "--backend", "mujoco", "--backend-opt", "calibration=nope.yaml", "--out", "x"], "no such file"),
        (["collect", "--robot", "cf2x", "--excite", "active", "--backend", "mujoco", "--out", "x"], "arms only"),
    ]
    for args, fragment in cases:
        result = robotlearn(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and fragment in lines[0], (args, result.stderr)


def test_quadrotor_calibration_applies_on_both_sims(tmp_path):
    """calibration= on the quadrotor sims: heavier, weaker props -> the same open-loop motor commands climb less,
    by the same amount in MuJoCo and PyBullet (a ratio thrust/mass of 0.95/1.08 on the net acceleration)."""
    calib = tmp_path / "quad.yaml"
    calib.write_text("mass_scale: 1.08\nthrust_scale: 0.95\n")
    spec = load_robot_spec("cf2x")
    climb = {}
    for name in ("mujoco", "pybullet"):
        for label, options in (("nominal", {}), ("calibrated", {"calibration": str(calib)})):
            b = make_backend(spec, name, {"ground": False, **options})
            try:
                b.reset(np.random.default_rng(0), {"pos": np.array([0.0, 0.0, 1.0])})
                rows = b.play_motor_commands(np.full((25, 4), 0.8))
            finally:
                b.close()
            climb[name, label] = rows[-1, 9]  # vertical velocity after 0.5 s (control_hz 50)
    for name in ("mujoco", "pybullet"):
        assert climb[name, "calibrated"] < climb[name, "nominal"] - 0.05
    assert climb["mujoco", "calibrated"] == pytest.approx(climb["pybullet", "calibrated"], rel=0.02)


def test_quadrotor_latency_and_wind_apply_alike_on_both_sims(tmp_path):
    """calibration= latency_s delays each CTBR command, wind pushes through the rotor drag: same on both sims."""
    calib = tmp_path / "quad.yaml"
    calib.write_text("latency_s: 0.03\nwind: [2.0, 0.0, 0.0]\n")
    spec = load_robot_spec("cf2x")
    commands = np.array([[0.5, 0.0, 3.0, 0.0]] * 5 + [[0.5, 0.0, -3.0, 0.0]] * 5 + [[0.45, 0.0, 0.0, 0.0]] * 15)
    rows = {}
    for name in ("mujoco", "pybullet"):
        for label, options in (("nominal", {}), ("calibrated", {"calibration": str(calib)})):
            b = make_backend(spec, name, {"ground": False, **options})
            try:
                b.reset(np.random.default_rng(0), {"pos": np.array([0.0, 0.0, 1.0])})
                out = []
                for c in commands:
                    b.command(c)
                    b.advance()
                    s = b.read()
                    out.append(np.concatenate([s["vel"], s["omega"]]))
            finally:
                b.close()
            rows[name, label] = np.array(out)
    for name in ("mujoco", "pybullet"):
        nominal, calibrated = rows[name, "nominal"], rows[name, "calibrated"]
        assert abs(nominal[0, 4]) > 0.5 > abs(calibrated[0, 4])  # the pitch-rate command arrives 30 ms late
        assert calibrated[-1, 0] > nominal[-1, 0] + 0.05  # blown downwind (+x)
    np.testing.assert_allclose(rows["mujoco", "calibrated"], rows["pybullet", "calibrated"], atol=0.02)


def test_a_replay_starts_the_gear_play_where_the_commands_left_it(tmp_path, monkeypatch):
    """A replayed segment starts from the measured joint state, but gear play keeps a state no sensor shows:
    which side of its dead band each servo's goal sits on. The commands before the segment fix it; a replay
    that started the play centred on the setpoint would track half the play off until the next reversal."""
    (tmp_path / "truth.yaml").write_text(yaml.safe_dump({"backlash": 0.02}))
    data = collect("mujoco", {"calibration": str(tmp_path / "truth.yaml")}, 4, "random", seed=1, progress=False)
    replayer = Replayer(data, "mujoco")
    truth = ArmPhysicalParams(backlash=0.02)
    try:
        warm = np.sqrt(np.mean((replayer.simulate(truth) - replayer.measured) ** 2))
        centred = {s: data.commands[s - 1] for s, _ in replayer.segments}
        monkeypatch.setattr(replayer, "_goals_behind_play", lambda backlash: centred)
        cold = np.sqrt(np.mean((replayer.simulate(truth) - replayer.measured) ** 2))
    finally:
        replayer.close()
    print(f"replay rms at the truth: play from the commands {warm:.2e}, centred {cold:.2e}")
    assert warm < 0.2 * cold, (warm, cold)
