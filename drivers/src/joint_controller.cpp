#include "rt/joint_controller.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace rt {

void JointLimits::validate() const {
  const std::size_t n = lower.size();
  if (upper.size() != n || max_velocity.size() != n || max_effort.size() != n)
    throw std::invalid_argument("JointLimits: lower/upper/max_velocity/max_effort sizes differ");
  for (std::size_t i = 0; i < n; ++i) {
    if (!(lower[i] < upper[i]))
      throw std::invalid_argument("JointLimits: lower >= upper for joint " + std::to_string(i));
    if (!(max_velocity[i] > 0) || !(max_effort[i] > 0))
      throw std::invalid_argument("JointLimits: non-positive velocity/effort for joint " + std::to_string(i));
  }
}

TargetInterpolator::TargetInterpolator(JointLimits limits, Interpolation mode)
    : limits_(std::move(limits)), mode_(mode) {
  limits_.validate();
  start_.assign(limits_.size(), 0.0);
  target_.assign(limits_.size(), 0.0);
}

void TargetInterpolator::reset(const double* q, double t) {
  for (std::size_t i = 0; i < size(); ++i)
    start_[i] = target_[i] = std::clamp(q[i], limits_.lower[i], limits_.upper[i]);
  t0_ = t;
  duration_ = 1e-9;
}

bool TargetInterpolator::set_target(const double* target, double t_now, double duration) {
  for (std::size_t i = 0; i < size(); ++i)
    if (!std::isfinite(target[i])) return false;
  if (!std::isfinite(duration) || duration <= 0) return false;
  // Start the new segment where the setpoint is now, so a late target never makes a jump.
  setpoint(t_now, start_.data());
  for (std::size_t i = 0; i < size(); ++i)
    target_[i] = std::clamp(target[i], limits_.lower[i], limits_.upper[i]);
  t0_ = t_now;
  duration_ = duration;
  return true;
}

void TargetInterpolator::setpoint(double t, double* out) const {
  const double s = std::clamp((t - t0_) / duration_, 0.0, 1.0);
  // Min-jerk profile 10s^3 - 15s^4 + 6s^5: zero velocity and acceleration at both ends.
  const double w = mode_ == Interpolation::MinJerk ? s * s * s * (10.0 + s * (-15.0 + 6.0 * s)) : s;
  for (std::size_t i = 0; i < size(); ++i) out[i] = start_[i] + w * (target_[i] - start_[i]);
}

ServoModel::ServoModel(JointLimits limits, std::vector<double> kp, std::vector<double> kd)
    : limits_(std::move(limits)), kp_(std::move(kp)), kd_(std::move(kd)) {
  limits_.validate();
  if (kp_.size() != limits_.size() || kd_.size() != limits_.size())
    throw std::invalid_argument("ServoModel: kp/kd sizes differ from limits");
}

Backlash::Backlash(std::vector<double> width, std::vector<double> initial) : out_(std::move(initial)) {
  half_.resize(width.size());
  for (std::size_t i = 0; i < width.size(); ++i) half_[i] = width[i] / 2.0;
  if (half_.size() != out_.size()) throw std::invalid_argument("Backlash: width and initial differ in length");
}

void Backlash::apply(double* q) {
  for (std::size_t i = 0; i < out_.size(); ++i) {
    out_[i] = std::clamp(out_[i], q[i] - half_[i], q[i] + half_[i]);
    q[i] = out_[i];
  }
}

void ServoModel::torque(const double* setpoint, const double* q, const double* qd, double* tau) const {
  for (std::size_t i = 0; i < size(); ++i) {
    const double effort = limits_.max_effort[i];
    const double speed_ratio = qd[i] / limits_.max_velocity[i];
    const double hi = effort * std::clamp(1.0 - speed_ratio, 0.0, 1.0);
    const double lo = -effort * std::clamp(1.0 + speed_ratio, 0.0, 1.0);
    const double u = kp_[i] * (setpoint[i] - q[i]) - kd_[i] * qd[i];
    tau[i] = std::isfinite(u) ? std::clamp(u, lo, hi) : 0.0;
  }
}

}  // namespace rt
