#include "rt/sim_drive.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace rt {

namespace {

// A per-joint setting: empty means 0 for every joint; otherwise one finite value >= 0 per joint.
std::vector<double> per_joint(std::vector<double> v, std::size_t n, const char* name) {
  if (v.empty()) v.assign(n, 0.0);
  if (v.size() != n) throw std::invalid_argument(std::string("JointDrive: ") + name + " needs one value per joint");
  for (double x : v)
    if (!(x >= 0) || !std::isfinite(x)) throw std::invalid_argument(std::string("JointDrive: ") + name + " must be >= 0");
  return v;
}

}  // namespace

JointDrive::JointDrive(JointLimits limits, std::vector<double> kp, std::vector<double> kd,
                       Interpolation mode, double physics_dt, std::vector<double> goal_ticks_per_unit,
                       std::vector<double> backlash)
    : interp_(limits, mode), safety_(limits), servo_(limits, std::move(kp), std::move(kd)), dt_(physics_dt),
      goal_ticks_per_unit_(per_joint(std::move(goal_ticks_per_unit), interp_.size(), "goal_ticks_per_unit")),
      goal_(interp_.size(), 0.0),
      backlash_(per_joint(std::move(backlash), interp_.size(), "backlash")),
      play_(backlash_, std::vector<double>(backlash_.size(), 0.0)) {
  if (!(physics_dt > 0)) throw std::invalid_argument("JointDrive: physics_dt must be > 0");
  setpoint_.assign(interp_.size(), 0.0);
}

void JointDrive::reset(const double* q, const double* play) {
  t_ = 0.0;
  interp_.reset(q, t_);
  safety_.reset(q);
  interp_.setpoint(t_, setpoint_.data());
  const double* out = play ? play : q;
  play_ = Backlash(backlash_, std::vector<double>(out, out + backlash_.size()));
}

bool JointDrive::set_target(const double* target, double duration, double delay) {
  if (!std::isfinite(delay) || delay < 0) return false;
  return interp_.set_target(target, t_ + delay, duration);
}

void JointDrive::compute(const double* q, const double* qd, double* tau) {
  interp_.setpoint(t_, setpoint_.data());
  safety_.apply(setpoint_.data(), dt_, q, nullptr);
  // A servo's goal register is an integer: it tracks the setpoint rounded to a tick. At a 4096-tick goal
  // that rounding is up to 0.77 mrad, which a stiff position loop (kp 200 N m/rad) turns into up to 0.15 N m:
  // 9x a present-current reading's noise, so a sim that tracked the continuous setpoint could not match
  // the current a real servo reports.
  for (std::size_t i = 0; i < goal_.size(); ++i) {
    const double g = goal_ticks_per_unit_[i];
    goal_[i] = g > 0 ? std::nearbyint(setpoint_[i] * g) / g : setpoint_[i];
  }
  play_.apply(goal_.data());
  servo_.torque(goal_.data(), q, qd, tau);
  t_ += dt_;
}

MujocoStepper::MujocoStepper(std::uintptr_t mj_step, std::uintptr_t model, std::uintptr_t data,
                             std::uintptr_t qpos, std::uintptr_t qvel, std::uintptr_t ctrl,
                             std::vector<int> qpos_index, std::vector<int> qvel_index,
                             std::vector<int> ctrl_index)
    : mj_step_(reinterpret_cast<StepFn>(mj_step)),
      model_(reinterpret_cast<const void*>(model)),
      data_(reinterpret_cast<void*>(data)),
      qpos_(reinterpret_cast<const double*>(qpos)),
      qvel_(reinterpret_cast<const double*>(qvel)),
      ctrl_(reinterpret_cast<double*>(ctrl)),
      qpos_index_(std::move(qpos_index)),
      qvel_index_(std::move(qvel_index)),
      ctrl_index_(std::move(ctrl_index)) {
  if (!mj_step || !model || !data || !qpos || !qvel || !ctrl)
    throw std::invalid_argument("MujocoStepper: null address");
  const std::size_t n = qpos_index_.size();
  if (qvel_index_.size() != n || ctrl_index_.size() != n)
    throw std::invalid_argument("MujocoStepper: index vectors differ in length");
  q_.resize(n);
  qd_.resize(n);
  tau_.resize(n);
}

void MujocoStepper::step(JointDrive& drive, int ticks) {
  if (drive.size() != q_.size()) throw std::invalid_argument("MujocoStepper: drive size mismatch");
  const std::size_t n = q_.size();
  for (int k = 0; k < ticks; ++k) {
    for (std::size_t i = 0; i < n; ++i) {
      q_[i] = qpos_[qpos_index_[i]];
      qd_[i] = qvel_[qvel_index_[i]];
    }
    drive.compute(q_.data(), qd_.data(), tau_.data());
    for (std::size_t i = 0; i < n; ++i) ctrl_[ctrl_index_[i]] = tau_[i];
    mj_step_(model_, data_);
  }
}

}  // namespace rt
