// The real-time servo loop: one std::thread at a fixed rate on absolute deadlines.
//
// Each cycle: read (one sync-read) -> interpolate toward the newest target -> safety (limits,
// watchdog, e-stop) -> write (one sync-write). Python publishes targets and reads state through
// seqlocks; the thread never touches Python, so a policy, a recorder and a camera thread holding
// the GIL cannot stretch a servo period. Time inside the loop is cycle_index / rate, the same
// clock JointDrive uses per physics tick, so the sim and the real loop emit the same setpoints.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "rt/histogram.hpp"
#include "rt/joint_controller.hpp"
#include "rt/safety.hpp"
#include "rt/seqlock.hpp"
#include "rt/servo_bus.hpp"

namespace rt {

constexpr std::size_t kMaxJoints = 32;

struct LoopConfig {
  double rate_hz = 500.0;
  JointLimits limits;
  Interpolation interpolation = Interpolation::MinJerk;
  double target_duration_s = 0.1;
  std::vector<double> ticks_per_unit, offset_ticks;  // SI = sign * (raw - offset) / ticks_per_unit
  std::vector<int> sign;
  std::vector<double> velocity_scale, effort_scale;  // SI per raw unit (before sign)
  double watchdog_hold_ms = 250.0;  // <= 0 disables
  double watchdog_off_ms = 2000.0;  // <= 0 disables
  int max_consecutive_timeouts = 5;
  bool realtime = true;        // try SCHED_FIFO + mlockall
  // > 0: sleep to spin_us before each deadline, then busy-wait to it. A virtual CPU that halts while
  // idle can wake from clock_nanosleep hundreds of us late; spinning keeps it running through the
  // window, at the cost of about spin_us * rate_hz of CPU per second (stats: cpu_fraction).
  double spin_us = 0.0;
  int priority = 80;
  bool handle_signals = false;  // SIGINT/SIGTERM -> e-stop (chained to the previous handler)
  bool torque_on_start = true;
  std::size_t record_capacity = 0;  // > 0: record (cycle, setpoint) and applied targets
};

enum class Watchdog { Ok = 0, Hold = 1, Off = 2 };

struct LoopState {
  std::vector<double> position, velocity, effort, setpoint;
  double timestamp = 0.0;
  std::int64_t cycle = -1;
};

struct Recording {
  std::vector<std::int64_t> cycle, target_cycle;
  std::vector<double> setpoint, target, initial;  // row-major [m, n]
  double target_duration = 0.0, dt = 0.0;
};

class ControlLoop {
 public:
  ControlLoop(ServoBus* bus, LoopConfig cfg);  // bus may be null: timing-only, ideal servos
  ~ControlLoop();
  ControlLoop(const ControlLoop&) = delete;
  ControlLoop& operator=(const ControlLoop&) = delete;

  void start();
  void stop();   // torque off, join; idempotent
  void estop(const std::string& why = "requested");  // torque off now, latch a fault
  // false: non-finite or not running. start_cycle >= 0: the target's segment starts at that cycle, not
  // at the cycle that picks it up (a host that computed it at a control tick gets the tick's timing, as a
  // sim steps it); a start more than one target duration in the past starts now.
  bool set_target(const double* q, std::size_t n, std::int64_t start_cycle = -1);
  LoopState state() const;
  // The state published at `cycle`, from the last kHistory cycles; false if it is older or not yet published.
  bool state_at(std::int64_t cycle, LoopState& out) const;
  static constexpr std::size_t kHistory = 32;
  // Blocks until a cycle > after_cycle is published or timeout; returns the latest cycle.
  std::int64_t wait_cycle(std::int64_t after_cycle, double timeout_s) const;
  bool running() const { return running_.load(std::memory_order_acquire); }
  bool faulted() const { return faulted_.load(std::memory_order_acquire); }
  std::string fault() const;
  Watchdog watchdog() const { return static_cast<Watchdog>(watchdog_.load(std::memory_order_relaxed)); }
  std::size_t size() const { return n_; }
  const LoopConfig& config() const { return cfg_; }
  Recording recording() const;

  // Stats
  const Histogram& period() const { return period_; }
  const Histogram& latency() const { return latency_; }
  const Histogram& work() const { return work_; }
  std::uint64_t cycles() const { return cycles_.load(std::memory_order_relaxed); }
  std::uint64_t overruns() const { return overruns_.load(std::memory_order_relaxed); }
  std::uint64_t missed_cycles() const { return missed_.load(std::memory_order_relaxed); }
  bool sched_fifo() const { return sched_fifo_; }
  const char* wait_mode() const { return cfg_.spin_us > 0 ? "sleep+spin" : "sleep"; }
  // CPU time the loop thread used and the wall time it ran (the last or current run).
  double cpu_seconds() const { return cpu_ns_.load(std::memory_order_relaxed) * 1e-9; }
  double run_seconds() const { return run_ns_.load(std::memory_order_relaxed) * 1e-9; }
  // Cycles whose sleep ended after the deadline, i.e. that the spin window did not cover.
  std::uint64_t late_wakes() const { return late_wakes_.load(std::memory_order_relaxed); }
  bool mlocked() const { return mlocked_ || mlock_granted_; }  // granted (now or during the last run)
  SafetyCounters safety_counters() const;
  std::uint64_t targets_applied() const { return targets_applied_.load(std::memory_order_relaxed); }
  std::uint64_t watchdog_holds() const { return wd_holds_.load(std::memory_order_relaxed); }
  std::uint64_t watchdog_offs() const { return wd_offs_.load(std::memory_order_relaxed); }
  ServoBus* bus() const { return bus_; }

  static void stop_all();  // process exit / fatal signal path

 private:
  void run();
  // link_ok: every servo answered; io_error: the port itself failed (EIO: cable or emulator gone),
  // which no retry can fix, so the loop faults at once instead of counting timeouts.
  bool read_joints(double* q, double* qd, double* tau, bool& link_ok, bool* io_error = nullptr);
  void write_joints(const double* sp);
  void torque(bool on);
  void set_fault(const std::string& f);
  void publish(const double* q, const double* qd, const double* tau, const double* sp, std::int64_t cycle);
  void wake_waiters();

  ServoBus* bus_;
  LoopConfig cfg_;
  std::size_t n_;
  double dt_;
  TargetInterpolator interp_;
  SafetyFilter safety_;
  std::vector<std::int32_t> raw_pos_, raw_vel_, raw_eff_, raw_goal_;
  std::vector<bool> fresh_;
  std::unique_ptr<bool[]> fresh_buf_;
  std::vector<double> q_, qd_, tau_, sp_, target_buf_;

  std::thread thread_;
  std::atomic<bool> running_{false}, stop_req_{false}, estop_req_{false}, faulted_{false};
  std::string estop_why_;
  mutable std::mutex fault_mu_, target_mu_, control_mu_;
  std::string fault_;

  Seqlock<kMaxJoints + 1> target_;  // the joints, then the start cycle
  std::uint64_t target_seen_ = 0;
  Seqlock<4 * kMaxJoints + 2> state_;
  std::array<Seqlock<4 * kMaxJoints + 2>, kHistory> history_;  // state_ of cycle c in slot c % kHistory
  std::atomic<std::int64_t> published_cycle_{-1};
  mutable std::atomic<std::uint32_t> futex_word_{0};
  mutable std::atomic<int> waiters_{0};

  Histogram period_, latency_, work_;
  std::atomic<std::uint64_t> cycles_{0}, overruns_{0}, missed_{0}, targets_applied_{0}, wd_holds_{0}, wd_offs_{0};
  std::atomic<std::uint64_t> late_wakes_{0};
  std::atomic<std::int64_t> cpu_ns_{0}, run_ns_{0};
  std::atomic<int> watchdog_{0};
  std::atomic<std::int64_t> last_target_ns_{0};
  bool sched_fifo_ = false, mlocked_ = false, mlock_granted_ = false;
  mutable std::mutex safety_mu_;
  SafetyCounters safety_snapshot_;

  // Recording (loop thread writes, Python reads up to the published counts).
  std::vector<std::int64_t> rec_cycle_, rec_tcycle_;
  std::vector<double> rec_sp_, rec_target_, rec_initial_;
  std::atomic<std::size_t> rec_n_{0}, rec_tn_{0};
};

}  // namespace rt
