// The emulated servo chain's real-time core: a device thread that answers the host on the wire
// schedule and steps the physics on wall-clock deadlines, and a reader thread that takes the host's
// bytes off the pty master and hands them over with their arrival time.
//
// Why two threads: the tty layer moves bytes written by the host through a flush worker (a kernel
// kworker at ordinary priority), and poll()/read() on the pty wait for that worker whenever bytes are
// in flight. With CPU hogs running the worker can wait 4-12 ms for a CPU, and a thread blocked there
// misses its physics ticks. Only the reader waits on the pty; the device thread waits on an eventfd
// and its own deadlines, so its ticks keep wall-clock time. Replies are written from the device
// thread (a pty write queues the worker, it does not wait for it).
//
// Python only configures it, renders cameras from the state snapshot it publishes, and serves the
// side channel; nothing here waits on the GIL, so a busy interpreter (camera rendering, a test
// process) no longer delays a status packet or a physics tick. The servo model between registers
// and physics (calibration, torque/operating-mode rules, latency, gear backlash, encoder noise) lives
// here too, so the MuJoCo path (stepped from this thread through MujocoStepper) and an external
// physics thread (PyBullet, stepped from Python through targets()/feedback()) share it.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "rt/emu_bank.hpp"
#include "rt/histogram.hpp"
#include "rt/sim_drive.hpp"

namespace rt {

// How the emulator's servos are mounted and how the hidden gap distorts them (all per servo
// unless noted). Built in Python from the hardware config and the reality-gap config.
struct ServoModelConfig {
  std::size_t n_joints = 0;
  std::vector<int> servo_joint;                  // joint index driven by each servo
  std::vector<std::pair<int, int>> mirrors;      // (dst joint, src joint): dst follows src's target
  std::vector<double> lower, upper;              // per joint
  std::vector<double> offset, sign, ticks_per_unit;  // SI = sign * (raw - offset) / ticks_per_unit
  std::vector<int> position_modes;               // operating_mode values that mean "position control"
  int resolution = 4096;
  double velocity_unit_rad_s = 0.0;              // one present_velocity unit
  double latency_s = 0.0;                        // goal -> motor and sensor -> register delay
  std::vector<double> backlash;                  // dead band at each servo, joint units
  std::vector<double> noise_std;                 // present-position noise, per joint, joint units
  // Present current / load: what the servo's motor draws for the torque it produces. Empty register
  // name: the model reports none. effort_scale: joint torque (N m; N for a prismatic joint) per raw
  // unit, per servo, i.e. the servo's torque constant times its register unit, through the gearing.
  std::string effort_register;
  std::vector<double> effort_scale;              // per servo
  std::vector<double> effort_noise;              // std of the reported value, raw units, per servo
  double effort_max_raw = 0.0;                   // the register saturates here (current limit / 100 % load)
  std::uint64_t seed = 0;
};

// Returns the value pushed `delay` ago (the newest when the delay is zero); fixed capacity.
class DelayLine {
 public:
  DelayLine(double delay_s, std::size_t width, std::size_t capacity);
  const double* push(double t, const double* v);  // returns the delayed row (valid until next push)

 private:
  double delay_;
  std::size_t width_, cap_, head_ = 0, n_ = 0;
  std::vector<double> t_, v_;
};

struct EmulatorStats {
  std::uint64_t physics_steps = 0, physics_late = 0, physics_resyncs = 0, updates = 0;
  std::uint64_t polls = 0, reads = 0, read_errors = 0, write_errors = 0, replies_dropped = 0;
  int tid = 0;  // the device thread's kernel id (its /proc/self/task/<tid> counters)
  double wall_time_s = 0, physics_time_s = 0, resync_time_s = 0;  // since start; physics + resyncs ~ wall
  bool sched_fifo = false, mlockall = false, running = false;
  std::string error;
};

class ServoEmulator {
 public:
  enum class Physics { Mujoco, External, Kinematic };

  // Kinematic: no physics; each servo with torque on moves its present position toward its goal
  // with a first-order lag (time constant follow_tau_s), at tick_hz.
  ServoEmulator(std::unique_ptr<RegisterBank> bank, std::map<int, int> baud_codes, bool wire_time, int master_fd,
                ServoModelConfig model, Physics physics, double tick_hz, int ticks_per_update, double follow_tau_s,
                bool realtime, int priority, bool lock_memory);
  ~ServoEmulator();

  // MuJoCo physics: the backend's stepper and drive (stepped from the emulator thread only), the
  // whole qpos vector for snapshots, and the initial joint positions.
  // qpos_index / qvel_index: each joint's address in qpos / qvel.
  void attach_mujoco(MujocoStepper* stepper, JointDrive* drive, const double* qpos, std::size_t nq,
                     const double* qvel, std::vector<int> qpos_index, std::vector<int> qvel_index);
  void set_initial(const double* q, const double* qd);  // initial present_* registers and pipeline state

  void start();  // returns once the thread serves the pty (so the first request is never late)
  void stop();

  // External physics (called from that thread): next joint targets, then the resulting state and
  // the servo torque that produced it (nullptr: none known, the servos report zero effort).
  void targets(double t, double* out);
  void feedback(double t, const double* q, const double* qd, const double* tau);

  // The limp arm held by the emulated person (calibration); nullptr lets go.
  void set_hold(const double* q);
  // Physics pause for side-channel edits of the sim (bus replies continue meanwhile).
  void lock_physics() { physics_mu_.lock(); }
  void unlock_physics() { physics_mu_.unlock(); }
  // Latest state: qpos (MuJoCo, full vector) or joint positions (others), and its physics time.
  std::vector<double> snapshot(double* t) const;
  std::vector<double> last_target() const;
  std::vector<double> joint_positions() const;

  RegisterBank& bank() { return *bank_; }
  ServoResponder& responder() { return responder_; }
  const Histogram& reply_latency() const { return reply_latency_; }  // write time - instruction read time
  const Histogram& reply_lateness() const { return reply_late_; }    // write time - wire-schedule due time
  const Histogram& physics_lag() const { return physics_lag_; }      // tick end - its wall-clock deadline
  const Histogram& physics_work() const { return physics_work_; }    // time one tick took (mj_step + servo model)
  const Histogram& wait_excess() const { return wait_excess_; }      // ppoll's time beyond the wait it was given
  const Histogram& serve_work() const { return serve_work_; }        // parsing what the reader took off the pty
  EmulatorStats stats() const;
  double tick_s() const { return dt_; }

 private:
  void run();
  void read_loop();      // the reader thread: pty -> rx queue (+ eventfd)
  void take_received();  // the device thread: rx queue -> responder
  void send_due(std::int64_t now);
  void physics_tick();
  void kinematic_tick();
  void servo_goals(const double* q_now, double* goals);  // register -> SI goals (bank locked)
  void write_present(const double* q, const double* qd, const double* tau);  // SI -> present registers (bank locked)
  void publish();

  std::unique_ptr<RegisterBank> bank_;
  ServoResponder responder_;
  int fd_;
  ServoModelConfig m_;
  Physics physics_;
  double dt_;
  int ticks_per_update_;
  double follow_tau_;
  bool realtime_, lock_memory_;
  int priority_;
  std::size_t ns_, nj_;

  MujocoStepper* stepper_ = nullptr;
  JointDrive* drive_ = nullptr;
  const double* qpos_ = nullptr;
  const double* qvel_ = nullptr;
  std::size_t nq_ = 0;
  std::vector<int> qpos_index_, qvel_index_;

  // servo model state
  DelayLine goal_delay_, sense_delay_;
  std::unique_ptr<Backlash> backlash_;
  std::mt19937_64 rng_;
  std::normal_distribution<double> normal_{0.0, 1.0};
  std::vector<double> goals_, target_, q_, qd_, sensed_, meas_q_, meas_qd_, meas_tau_, tick_state_, kin_pos_;
  std::vector<double> tau_sum_;  // servo torque summed over the ticks of the current update (MuJoCo)
  int tau_ticks_ = 0;
  std::vector<double> hold_;
  bool holding_ = false;
  std::vector<int> position_mode_;
  const Field *torque_f_, *mode_f_, *goal_f_, *pos_f_, *vel_f_, *moving_f_, *min_f_, *max_f_, *eff_f_ = nullptr;

  // thread
  std::thread thread_;
  std::atomic<bool> stop_{false}, running_{false}, ready_{false}, sched_fifo_{false}, mlocked_{false};
  PiMutex physics_mu_;
  ReplyQueue pending_;
  std::vector<std::uint8_t> rx_;  // the reader's read buffer
  // Bytes received and not yet parsed: appended by the reader, taken by the device thread (swapped
  // with the *_work_ buffers, whose capacity is kept, so steady state allocates nothing).
  struct RxMark {
    std::size_t end;     // offset just past this read's bytes in rx_bytes_
    std::int64_t t_ns;   // when the read returned them
  };
  PiMutex rx_mu_;
  std::vector<std::uint8_t> rx_bytes_, rx_bytes_work_;
  std::vector<RxMark> rx_marks_, rx_marks_work_;
  int wake_fd_ = -1;  // eventfd: the reader's "bytes are queued"
  std::thread reader_;
  std::int64_t t0_ = 0, ticks_ = 0;
  std::int64_t tick_estimate_ns_ = 0;  // a high running estimate of one physics tick's work (RT thread only)
  std::atomic<int> tid_{0};
  std::atomic<std::int64_t> start_ns_{0}, ticks_pub_{0}, resync_ns_{0};
  Histogram reply_latency_, reply_late_, physics_lag_, physics_work_, wait_excess_, serve_work_;
  std::atomic<std::uint64_t> steps_{0}, late_{0}, resyncs_{0}, updates_{0}, polls_{0}, reads_{0}, read_err_{0},
      write_err_{0};
  // snapshot (seqlock over a runtime-sized vector)
  mutable std::atomic<std::uint64_t> snap_seq_{0};
  std::unique_ptr<std::atomic<double>[]> snap_;
  std::size_t snap_n_ = 0;
  std::vector<double> snap_scratch_;
  mutable PiMutex target_mu_;
  std::vector<double> last_target_pub_, joint_pub_;
  std::string error_;
  mutable PiMutex error_mu_;
};

}  // namespace rt
