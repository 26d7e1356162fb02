// Setpoint safety shared by the sim drive and the real-time loop, so both produce the same
// setpoints: non-finite rejection, position limits, and a per-joint velocity limit on how fast
// the commanded setpoint may move. The real loop also passes measured effort: a joint pushing
// harder than max_effort is held where it is instead of pushed further.
#pragma once
#include <cstdint>
#include <vector>

#include "rt/joint_controller.hpp"

namespace rt {

struct SafetyCounters {
  std::uint64_t nonfinite = 0, position_clamps = 0, velocity_clamps = 0, effort_holds = 0;
};

class SafetyFilter {
 public:
  explicit SafetyFilter(JointLimits limits);
  void reset(const double* q);  // the last commanded setpoint becomes q
  // In-place on setpoint; dt is the time since the previous apply(). q/effort may be null.
  void apply(double* setpoint, double dt, const double* q, const double* effort);
  const std::vector<double>& last() const { return last_; }
  const SafetyCounters& counters() const { return c_; }
  std::size_t size() const { return limits_.size(); }
  const JointLimits& limits() const { return limits_; }

 private:
  JointLimits limits_;
  std::vector<double> last_;
  SafetyCounters c_;
};

}  // namespace rt
