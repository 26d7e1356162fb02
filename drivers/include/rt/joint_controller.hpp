// Host-side joint controller shared by the sim backends and the real-time loop.
//
// Policies send joint targets at control rate (10-50 Hz); servos want a smooth setpoint every
// servo tick (500 Hz - 1 kHz). The interpolator turns the former into the latter, and the servo
// model turns setpoints into torques for simulated servos (sims and emulators), so a sim and the
// real loop produce the same setpoint stream from the same targets.
#pragma once
#include <cstddef>
#include <vector>

namespace rt {

enum class Interpolation { Linear = 0, MinJerk = 1 };

struct JointLimits {
  std::vector<double> lower, upper;   // rad or m
  std::vector<double> max_velocity;   // rad/s or m/s (servo no-load speed)
  std::vector<double> max_effort;     // Nm or N (servo stall torque / force)
  std::size_t size() const { return lower.size(); }
  void validate() const;  // throws std::invalid_argument on inconsistent sizes / values
};

// Smoothly moves a setpoint from the previous target to the newest one over one control period.
class TargetInterpolator {
 public:
  TargetInterpolator(JointLimits limits, Interpolation mode);
  void reset(const double* q, double t);
  // Rejects (returns false, keeps the old target) any target holding NaN/inf; clamps to limits.
  bool set_target(const double* target, double t_now, double duration);
  void setpoint(double t, double* out) const;
  const std::vector<double>& target() const { return target_; }
  std::size_t size() const { return limits_.size(); }
  const JointLimits& limits() const { return limits_; }
  Interpolation mode() const { return mode_; }

 private:
  JointLimits limits_;
  Interpolation mode_;
  std::vector<double> start_, target_;
  double t0_ = 0.0, duration_ = 1e-9;
};

// Gear play: the output follows the input only after the input crosses a dead band of `width`. Applied to
// each servo's goal every tick, by the sims' drive and the emulated servos alike.
class Backlash {
 public:
  Backlash(std::vector<double> width, std::vector<double> initial);
  void apply(double* q);  // in place: input -> output

 private:
  std::vector<double> half_, out_;
};

// A position servo as X-series hobby servos behave: PD on the setpoint, torque capped by the
// DC-motor torque-speed line (stall torque at rest, zero at no-load speed), which is what
// limits their velocity in practice.
class ServoModel {
 public:
  ServoModel(JointLimits limits, std::vector<double> kp, std::vector<double> kd);
  void torque(const double* setpoint, const double* q, const double* qd, double* tau) const;
  std::size_t size() const { return kp_.size(); }

 private:
  JointLimits limits_;
  std::vector<double> kp_, kd_;
};

}  // namespace rt
