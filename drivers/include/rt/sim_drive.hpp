// Runs the shared joint controller once per physics tick for the sim backends.
//
// A physics tick is ~20 us of MuJoCo work for a small arm; a Python round trip per tick would
// double that, so the whole control period (interpolate -> servo torque -> mj_step) runs here.
#pragma once
#include <cstdint>
#include <vector>

#include "rt/joint_controller.hpp"
#include "rt/safety.hpp"

namespace rt {

class JointDrive {
 public:
  // `goal_ticks_per_unit[i]` > 0: joint i's servo tracks its setpoint rounded to that many goal-register ticks
  // per rad (or m), as a real servo's integer goal register makes it; 0 or empty: the continuous setpoint.
  // `backlash[i]`: gear play (dead band width) between that goal and what the servo's PD tracks, every tick,
  // as the emulated servos apply it (empty: none).
  JointDrive(JointLimits limits, std::vector<double> kp, std::vector<double> kd, Interpolation mode,
             double physics_dt, std::vector<double> goal_ticks_per_unit = {}, std::vector<double> backlash = {});
  // `play` (optional): where the gear play leaves each servo's goal (default: at q), a state the play keeps
  // from the motion before the reset.
  void reset(const double* q, const double* play = nullptr);
  // The new segment starts `delay` seconds after the drive's clock (0 <= delay < one tick): a command
  // latency that is not a whole number of physics ticks (sims' latency_s).
  bool set_target(const double* target, double duration, double delay = 0.0);
  // One physics tick: setpoint at the current time -> safety filter (the same one the real loop
  // applies) -> servo torque; advances the drive clock.
  void compute(const double* q, const double* qd, double* tau);
  // The filtered setpoint, before the goal register's rounding (what a host writes, in SI units).
  const std::vector<double>& setpoint() const { return setpoint_; }
  const std::vector<double>& target() const { return interp_.target(); }
  double time() const { return t_; }
  double dt() const { return dt_; }
  std::size_t size() const { return interp_.size(); }
  Interpolation interpolation() const { return interp_.mode(); }

 private:
  TargetInterpolator interp_;
  SafetyFilter safety_;
  ServoModel servo_;
  double dt_, t_ = 0.0;
  std::vector<double> setpoint_, goal_ticks_per_unit_, goal_, backlash_;
  Backlash play_;
};

// Drives a MuJoCo model through libmujoco's own mj_step (address taken from the loaded library),
// reading joint state straight from mjData's arrays and writing motor torques into d->ctrl.
class MujocoStepper {
 public:
  MujocoStepper(std::uintptr_t mj_step, std::uintptr_t model, std::uintptr_t data, std::uintptr_t qpos,
                std::uintptr_t qvel, std::uintptr_t ctrl, std::vector<int> qpos_index,
                std::vector<int> qvel_index, std::vector<int> ctrl_index);
  void step(JointDrive& drive, int ticks);
  // The servo torque of the last tick (joint order): what a servo's present current measures.
  const std::vector<double>& torque() const { return tau_; }

 private:
  using StepFn = void (*)(const void*, void*);
  StepFn mj_step_;
  const void* model_;
  void* data_;
  const double* qpos_;
  const double* qvel_;
  double* ctrl_;
  std::vector<int> qpos_index_, qvel_index_, ctrl_index_;
  std::vector<double> q_, qd_, tau_;
};

}  // namespace rt
