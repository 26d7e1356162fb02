#include "rt/safety.hpp"

#include <algorithm>
#include <cmath>

namespace rt {

SafetyFilter::SafetyFilter(JointLimits limits) : limits_(std::move(limits)) {
  limits_.validate();
  last_.assign(limits_.size(), 0.0);
}

void SafetyFilter::reset(const double* q) {
  for (std::size_t i = 0; i < size(); ++i) last_[i] = std::isfinite(q[i]) ? q[i] : 0.0;
}

void SafetyFilter::apply(double* sp, double dt, const double* q, const double* effort) {
  for (std::size_t i = 0; i < size(); ++i) {
    double s = sp[i];
    if (!std::isfinite(s)) {
      ++c_.nonfinite;
      s = last_[i];
    }
    if (effort && q && std::isfinite(effort[i]) && std::abs(effort[i]) > limits_.max_effort[i] && std::isfinite(q[i])) {
      ++c_.effort_holds;
      s = q[i];
    }
    const double c = std::clamp(s, limits_.lower[i], limits_.upper[i]);
    if (c != s) ++c_.position_clamps;
    // Rate limit from the last command; a setpoint that starts outside the limits (arm resting
    // past a soft limit) is walked back in at max velocity rather than jumped.
    const double step = limits_.max_velocity[i] * std::max(dt, 0.0);
    const double r = std::clamp(c, last_[i] - step, last_[i] + step);
    if (r != c) ++c_.velocity_clamps;
    sp[i] = last_[i] = r;
  }
}

}  // namespace rt
