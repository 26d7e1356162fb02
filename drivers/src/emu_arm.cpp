// Real-time core of the emulated servo chain (see rt/emu_arm.hpp).
#include "rt/emu_arm.hpp"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <stdexcept>

#include "rt/serial_port.hpp"

namespace rt {
namespace {

constexpr std::int64_t kSpinNs = 60000;  // replies due sooner than this are sent by spinning (a FIFO thread wakes within ~20-50 us here)
constexpr std::int64_t kResyncNs = 100000000;  // physics this far behind (VM pause): jump, do not race to catch up
constexpr std::int64_t kIdlePollNs = 50000000;  // longest sleep, so stop() is seen promptly

void check(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("ServoEmulator: " + what);
}

}  // namespace

// --- DelayLine ------------------------------------------------------------------------------
DelayLine::DelayLine(double delay_s, std::size_t width, std::size_t capacity)
    : delay_(delay_s), width_(width), cap_(std::max<std::size_t>(capacity, 2)), t_(cap_), v_(cap_ * width) {}

const double* DelayLine::push(double t, const double* v) {
  if (n_ == cap_) {  // full: drop the oldest (only with a delay longer than the capacity covers)
    head_ = (head_ + 1) % cap_;
    --n_;
  }
  const std::size_t slot = (head_ + n_) % cap_;
  t_[slot] = t;
  std::copy(v, v + width_, v_.begin() + static_cast<std::ptrdiff_t>(slot * width_));
  ++n_;
  // A row exactly `delay` old is due: 1 ns of slack, because tick times are sums of a float period and a
  // 4 ms delay at 2 ms ticks otherwise came out 4 or 6 ms by rounding, tick by tick.
  while (n_ > 1 && t_[(head_ + 1) % cap_] <= t - delay_ + 1e-9) {
    head_ = (head_ + 1) % cap_;
    --n_;
  }
  return v_.data() + head_ * width_;
}

// --- ServoEmulator -----------------------------------------------------------------------------
ServoEmulator::ServoEmulator(std::unique_ptr<RegisterBank> bank, std::map<int, int> baud_codes, bool wire_time,
                             int master_fd, ServoModelConfig model, Physics physics, double tick_hz,
                             int ticks_per_update, double follow_tau_s, bool realtime, int priority, bool lock_memory)
    : bank_(std::move(bank)),
      responder_(*bank_, std::move(baud_codes), wire_time),
      fd_(master_fd),
      m_(std::move(model)),
      physics_(physics),
      dt_(1.0 / tick_hz),
      ticks_per_update_(ticks_per_update),
      follow_tau_(follow_tau_s),
      realtime_(realtime),
      lock_memory_(lock_memory),
      priority_(priority),
      ns_(bank_->size()),
      nj_(m_.n_joints),
      // 2 kHz of pushes covers the longest delay the gap allows (0.2 s) with room to spare
      goal_delay_(m_.latency_s, bank_->size(), static_cast<std::size_t>(m_.latency_s * 2000.0) + 8),
      sense_delay_(m_.latency_s, 3 * m_.n_joints, static_cast<std::size_t>(m_.latency_s * 2000.0) + 8),
      rng_(m_.seed) {
  check(tick_hz > 0 && tick_hz <= 20000, "tick_hz must be in (0, 20000]");
  check(ticks_per_update >= 1, "ticks_per_update must be >= 1");
  check(m_.servo_joint.size() == ns_, "servo_joint needs one entry per servo");
  check(m_.offset.size() == ns_ && m_.sign.size() == ns_ && m_.ticks_per_unit.size() == ns_,
        "calibration needs one offset/sign/ticks_per_unit per servo");
  check(m_.backlash.size() == ns_, "backlash needs one width per servo");
  check(m_.lower.size() == nj_ && m_.upper.size() == nj_ && m_.noise_std.size() == nj_, "joint vectors need n_joints entries");
  for (int j : m_.servo_joint) check(j >= 0 && static_cast<std::size_t>(j) < nj_, "servo_joint out of range");
  for (auto [d, s] : m_.mirrors)
    check(d >= 0 && s >= 0 && static_cast<std::size_t>(d) < nj_ && static_cast<std::size_t>(s) < nj_, "mirror out of range");
  for (double t : m_.ticks_per_unit) check(std::abs(t) > 0, "ticks_per_unit must be non-zero");
  check(physics != Physics::Kinematic || follow_tau_s > 0, "follow_tau_s must be > 0");
  torque_f_ = &bank_->require("torque_enable");
  goal_f_ = &bank_->require("goal_position");
  pos_f_ = &bank_->require("present_position");
  mode_f_ = bank_->field("operating_mode");
  vel_f_ = bank_->field("present_velocity");
  moving_f_ = bank_->field("moving");
  min_f_ = bank_->field("min_position_limit");
  max_f_ = bank_->field("max_position_limit");
  if (!min_f_ || !max_f_) min_f_ = max_f_ = nullptr;
  if (!m_.effort_register.empty()) {
    eff_f_ = &bank_->require(m_.effort_register);
    check(m_.effort_scale.size() == ns_ && m_.effort_noise.size() == ns_, "effort_scale / effort_noise need one entry per servo");
    for (double e : m_.effort_scale) check(e > 0, "effort_scale must be > 0");
    check(m_.effort_max_raw > 0, "effort_max_raw must be > 0");
  }
  goals_.assign(ns_, 0.0);
  target_.assign(nj_, 0.0);
  q_.assign(nj_, 0.0);
  qd_.assign(nj_, 0.0);
  sensed_.assign(3 * nj_, 0.0);
  meas_q_.assign(nj_, 0.0);
  meas_tau_.assign(nj_, 0.0);
  tau_sum_.assign(nj_, 0.0);
  tick_state_.assign(2 * nj_, 0.0);
  meas_qd_.assign(nj_, 0.0);
  hold_.assign(nj_, 0.0);
  kin_pos_.assign(ns_, 0.0);
  last_target_pub_.assign(nj_, 0.0);
  joint_pub_.assign(nj_, 0.0);
  backlash_ = std::make_unique<Backlash>(m_.backlash, std::vector<double>(ns_, 0.0));
  snap_n_ = nj_;
  snap_.reset(new std::atomic<double>[snap_n_ + 1]);
  snap_scratch_.assign(snap_n_ + 1, 0.0);
  rx_.assign(4096, 0);
  for (auto* v : {&rx_bytes_, &rx_bytes_work_}) v->reserve(1 << 16);
  for (auto* v : {&rx_marks_, &rx_marks_work_}) v->reserve(1024);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  check(wake_fd_ >= 0, std::string("eventfd: ") + std::strerror(errno));
  check(fd_ >= 0 && fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK) == 0, "master_fd is not an open descriptor");
  {
    std::lock_guard<PiMutex> lk(bank_->mutex());
    for (std::size_t k = 0; k < ns_; ++k) kin_pos_[k] = static_cast<double>(bank_->get(k, *pos_f_));
  }
}

ServoEmulator::~ServoEmulator() {
  stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void ServoEmulator::attach_mujoco(MujocoStepper* stepper, JointDrive* drive, const double* qpos, std::size_t nq,
                                  const double* qvel, std::vector<int> qpos_index, std::vector<int> qvel_index) {
  check(physics_ == Physics::Mujoco, "attach_mujoco needs Physics.MUJOCO");
  check(!running_.load(), "attach_mujoco before start()");
  check(drive->size() == nj_, "drive size differs from n_joints");
  check(qpos_index.size() == nj_ && qvel_index.size() == nj_, "qpos_index / qvel_index need n_joints entries");
  for (std::size_t j = 0; j < nj_; ++j)
    check(qpos_index[j] >= 0 && static_cast<std::size_t>(qpos_index[j]) < nq && qvel_index[j] >= 0,
          "qpos_index / qvel_index out of range");
  qvel_ = qvel;
  qpos_index_ = std::move(qpos_index);
  qvel_index_ = std::move(qvel_index);
  stepper_ = stepper;
  drive_ = drive;
  qpos_ = qpos;
  nq_ = nq;
  snap_n_ = nq;
  snap_.reset(new std::atomic<double>[snap_n_ + 1]);
  snap_scratch_.assign(snap_n_ + 1, 0.0);
}

void ServoEmulator::set_initial(const double* q, const double* qd) {
  check(!running_.load(), "set_initial before start()");
  std::copy(q, q + nj_, q_.begin());
  std::copy(qd, qd + nj_, qd_.begin());
  std::vector<double> servo_q(ns_);
  for (std::size_t k = 0; k < ns_; ++k) servo_q[k] = q[m_.servo_joint[k]];
  backlash_ = std::make_unique<Backlash>(m_.backlash, servo_q);
  std::copy(q, q + nj_, last_target_pub_.begin());
  std::copy(q, q + nj_, joint_pub_.begin());
  std::lock_guard<PiMutex> lk(bank_->mutex());
  write_present(q, qd, nullptr);
  for (std::size_t k = 0; k < ns_; ++k) kin_pos_[k] = static_cast<double>(bank_->get(k, *pos_f_));
}

void ServoEmulator::set_hold(const double* q) {
  std::lock_guard<PiMutex> lk(bank_->mutex());
  holding_ = q != nullptr;
  if (q) std::copy(q, q + nj_, hold_.begin());
}

void ServoEmulator::start() {
  if (running_.load()) return;
  check(physics_ != Physics::Mujoco || stepper_, "MuJoCo physics needs attach_mujoco() first");
  stop_.store(false);
  ready_.store(false);
  running_.store(true);
  thread_ = std::thread(&ServoEmulator::run, this);
  reader_ = std::thread(&ServoEmulator::read_loop, this);
  // A new thread starts as an ordinary one; on a loaded machine it may wait milliseconds for its first
  // run (before it can make itself SCHED_FIFO). Hosts must not talk to it before that.
  while (!ready_.load() && running_.load()) {
    timespec ts{0, 100000};
    nanosleep(&ts, nullptr);
  }
}

void ServoEmulator::stop() {
  stop_.store(true);
  if (reader_.joinable()) reader_.join();
  if (thread_.joinable()) thread_.join();
  running_.store(false);
}

// Register -> SI goal per servo. A servo with torque off (or not in a position mode) is limp: it
// follows the arm, unless the emulated person holds the arm in a pose.
void ServoEmulator::servo_goals(const double* q_now, double* goals) {
  for (std::size_t k = 0; k < ns_; ++k) {
    const int j = m_.servo_joint[k];
    bool position_mode = true;
    if (mode_f_) {
      const auto mode = static_cast<int>(bank_->get_raw(k, *mode_f_));
      position_mode = std::find(m_.position_modes.begin(), m_.position_modes.end(), mode) != m_.position_modes.end();
    }
    if (bank_->get_raw(k, *torque_f_) && position_mode) {
      double raw = static_cast<double>(bank_->get(k, *goal_f_));
      if (min_f_) raw = std::clamp(raw, static_cast<double>(bank_->get_raw(k, *min_f_)), static_cast<double>(bank_->get_raw(k, *max_f_)));
      goals[k] = m_.sign[k] * (raw - m_.offset[k]) / m_.ticks_per_unit[k];
    } else {
      goals[k] = holding_ ? hold_[j] : q_now[j];
    }
  }
}

void ServoEmulator::write_present(const double* q, const double* qd, const double* tau) {
  const double res = m_.resolution;
  for (std::size_t k = 0; k < ns_; ++k) {
    const int j = m_.servo_joint[k];
    const double raw = std::round(m_.offset[k] + m_.sign[k] * q[j] * m_.ticks_per_unit[k]);
    bank_->set(k, *pos_f_, static_cast<std::int64_t>(std::clamp(raw, 0.0, res - 1)));
    if (vel_f_ && m_.velocity_unit_rad_s > 0) {
      const double ticks_per_s = m_.sign[k] * qd[j] * m_.ticks_per_unit[k];
      bank_->set(k, *vel_f_, std::llround(ticks_per_s * (2 * M_PI / res) / m_.velocity_unit_rad_s));
    }
    if (moving_f_) bank_->set(k, *moving_f_, std::abs(qd[j]) > 0.01 ? 1 : 0);
    if (eff_f_) {
      // One servo drives its joint and the joints mirroring it (both gripper fingers): it carries their sum.
      double t = tau ? tau[j] : 0.0;
      for (auto [d, src] : m_.mirrors)
        if (tau && src == j) t += tau[d];
      double raw = m_.sign[k] * t / m_.effort_scale[k];
      if (m_.effort_noise[k] > 0) raw += normal_(rng_) * m_.effort_noise[k];
      bank_->set(k, *eff_f_, std::llround(std::clamp(raw, -m_.effort_max_raw, m_.effort_max_raw)));
    }
  }
}

void ServoEmulator::targets(double t, double* out) {
  {
    std::lock_guard<PiMutex> lk(bank_->mutex());
    servo_goals(q_.data(), goals_.data());
  }
  const double* delayed = goal_delay_.push(t, goals_.data());
  std::copy(delayed, delayed + ns_, goals_.begin());
  backlash_->apply(goals_.data());
  std::copy(q_.begin(), q_.end(), out);  // joints without a servo hold where they are
  for (std::size_t k = 0; k < ns_; ++k) out[m_.servo_joint[k]] = goals_[k];
  for (auto [d, s] : m_.mirrors) out[d] = out[s];
  for (std::size_t j = 0; j < nj_; ++j) out[j] = std::clamp(out[j], m_.lower[j], m_.upper[j]);
  std::lock_guard<PiMutex> lk(target_mu_);
  std::copy(out, out + nj_, last_target_pub_.begin());
}

void ServoEmulator::feedback(double t, const double* q, const double* qd, const double* tau) {
  std::copy(q, q + nj_, q_.begin());
  std::copy(qd, qd + nj_, qd_.begin());
  std::copy(q, q + nj_, sensed_.begin());
  std::copy(qd, qd + nj_, sensed_.begin() + static_cast<std::ptrdiff_t>(nj_));
  if (tau) std::copy(tau, tau + nj_, sensed_.begin() + static_cast<std::ptrdiff_t>(2 * nj_));
  else std::fill(sensed_.begin() + static_cast<std::ptrdiff_t>(2 * nj_), sensed_.end(), 0.0);
  const double* s = sense_delay_.push(t, sensed_.data());
  for (std::size_t j = 0; j < nj_; ++j) {
    meas_q_[j] = s[j] + (m_.noise_std[j] > 0 ? normal_(rng_) * m_.noise_std[j] : 0.0);
    meas_qd_[j] = s[nj_ + j];
    meas_tau_[j] = s[2 * nj_ + j];
  }
  {
    std::lock_guard<PiMutex> lk(bank_->mutex());
    write_present(meas_q_.data(), meas_qd_.data(), meas_tau_.data());
  }
  std::lock_guard<PiMutex> lk(target_mu_);
  std::copy(q, q + nj_, joint_pub_.begin());
  updates_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<double> ServoEmulator::last_target() const {
  std::lock_guard<PiMutex> lk(target_mu_);
  return last_target_pub_;
}

std::vector<double> ServoEmulator::joint_positions() const {
  std::lock_guard<PiMutex> lk(target_mu_);
  return joint_pub_;
}

void ServoEmulator::publish() {
  const std::size_t n = snap_n_;
  if (qpos_) std::copy(qpos_, qpos_ + n, snap_scratch_.begin());
  else std::copy(q_.begin(), q_.end(), snap_scratch_.begin());
  snap_scratch_[n] = static_cast<double>(ticks_) * dt_;
  const std::uint64_t s = snap_seq_.load(std::memory_order_relaxed);
  snap_seq_.store(s + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  for (std::size_t i = 0; i <= n; ++i) snap_[i].store(snap_scratch_[i], std::memory_order_relaxed);
  snap_seq_.store(s + 2, std::memory_order_release);
}

std::vector<double> ServoEmulator::snapshot(double* t) const {
  std::vector<double> out(snap_n_ + 1);
  for (;;) {
    const std::uint64_t s1 = snap_seq_.load(std::memory_order_acquire);
    if (s1 & 1) continue;
    for (std::size_t i = 0; i <= snap_n_; ++i) out[i] = snap_[i].load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (snap_seq_.load(std::memory_order_relaxed) == s1) break;
  }
  if (t) *t = out.back();
  out.pop_back();
  return out;
}

void ServoEmulator::physics_tick() {
  const double t = static_cast<double>(ticks_) * dt_;
  if (ticks_ % ticks_per_update_ == 0) {
    targets(t, target_.data());
    drive_->set_target(target_.data(), ticks_per_update_ * dt_);
  }
  stepper_->step(*drive_, 1);
  const std::vector<double>& tau = stepper_->torque();
  for (std::size_t j = 0; j < nj_; ++j) tau_sum_[j] += tau[j];
  ++tau_ticks_;
  if ((ticks_ + 1) % ticks_per_update_ == 0) {
    // A servo's current sensor is filtered over its own update period: report the period's mean torque.
    for (std::size_t j = 0; j < nj_; ++j) {
      tick_state_[j] = qpos_[qpos_index_[j]];
      tick_state_[nj_ + j] = qvel_[qvel_index_[j]];
      tau_sum_[j] /= tau_ticks_;
    }
    feedback(t + dt_, tick_state_.data(), tick_state_.data() + nj_, tau_sum_.data());
    std::fill(tau_sum_.begin(), tau_sum_.end(), 0.0);
    tau_ticks_ = 0;
  }
}

void ServoEmulator::kinematic_tick() {
  const double alpha = 1.0 - std::exp(-dt_ / follow_tau_);
  std::lock_guard<PiMutex> lk(bank_->mutex());
  for (std::size_t k = 0; k < ns_; ++k) {
    if (!bank_->get_raw(k, *torque_f_)) {
      kin_pos_[k] = static_cast<double>(bank_->get(k, *pos_f_));  // limp: whatever was set stays
      continue;
    }
    kin_pos_[k] += (static_cast<double>(bank_->get(k, *goal_f_)) - kin_pos_[k]) * alpha;
    bank_->set(k, *pos_f_, std::llround(kin_pos_[k]));
  }
}

void ServoEmulator::send_due(std::int64_t now) {
  while (!pending_.empty() && pending_.front().due_ns - now <= kSpinNs) {
    PendingReply& r = pending_.front();
    while (monotonic_ns() < r.due_ns) {
    }
    const ssize_t w = ::write(fd_, r.bytes.data(), r.bytes.size());
    const std::int64_t sent = monotonic_ns();
    if (w != static_cast<ssize_t>(r.bytes.size())) write_err_.fetch_add(1, std::memory_order_relaxed);
    reply_latency_.add(sent - r.rx_ns);
    reply_late_.add(sent - r.due_ns);
    pending_.pop_front();
    now = sent;
  }
}

void ServoEmulator::read_loop() {
  if (realtime_) {  // the same priority as the device thread: a byte is taken as soon as the tty has it
    sched_param sp{};
    sp.sched_priority = priority_;
    pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
  }
  const std::uint64_t one = 1;
  while (!stop_.load(std::memory_order_acquire)) {
    pollfd pfd{fd_, POLLIN, 0};
    const int r = ::poll(&pfd, 1, static_cast<int>(kIdlePollNs / 1000000));
    if (r > 0 && (pfd.revents & POLLIN)) {
      bool got = false;
      for (;;) {
        const ssize_t n = ::read(fd_, rx_.data(), rx_.size());
        if (n <= 0) {
          if (n < 0 && errno != EAGAIN && errno != EINTR) read_err_.fetch_add(1, std::memory_order_relaxed);
          break;
        }
        const std::int64_t t_rx = monotonic_ns();
        reads_.fetch_add(1, std::memory_order_relaxed);
        {
          std::lock_guard<PiMutex> lk(rx_mu_);
          rx_bytes_.insert(rx_bytes_.end(), rx_.begin(), rx_.begin() + n);
          rx_marks_.push_back({rx_bytes_.size(), t_rx});
        }
        got = true;
        if (static_cast<std::size_t>(n) < rx_.size()) break;
      }
      if (got && ::write(wake_fd_, &one, sizeof(one)) < 0) write_err_.fetch_add(1, std::memory_order_relaxed);
    } else if (r > 0 && (pfd.revents & (POLLHUP | POLLERR))) {
      read_err_.fetch_add(1, std::memory_order_relaxed);  // EIO/HUP: no host has the slave open right now
      timespec nap{0, 1000000};
      nanosleep(&nap, nullptr);
    }
  }
}

void ServoEmulator::take_received() {
  std::uint64_t count;
  while (::read(wake_fd_, &count, sizeof(count)) > 0) {
  }
  {
    std::lock_guard<PiMutex> lk(rx_mu_);
    rx_bytes_.swap(rx_bytes_work_);
    rx_marks_.swap(rx_marks_work_);
  }
  std::size_t begin = 0;
  for (const RxMark& m : rx_marks_work_) {
    responder_.feed(rx_bytes_work_.data() + begin, m.end - begin, m.t_ns, pending_);
    begin = m.end;
  }
  rx_bytes_work_.clear();
  rx_marks_work_.clear();
}

void ServoEmulator::run() {
  try {
    if (realtime_) {
      sched_param sp{};
      sp.sched_priority = priority_;
      sched_fifo_.store(pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0);
    }
    if (lock_memory_) mlocked_.store(mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0);
    {  // touch the stack now so a page fault never lands inside an exchange
      volatile char stack[64 * 1024];
      std::memset(const_cast<char*>(stack), 0, sizeof(stack));
    }
    const std::int64_t dt_ns = std::llround(dt_ * 1e9);
    const bool stepping = physics_ != Physics::External;
    tid_.store(static_cast<int>(gettid()));
    t0_ = monotonic_ns();
    start_ns_.store(t0_);
    ticks_ = 0;
    if (physics_ == Physics::Mujoco) publish();
    ready_.store(true);
    while (!stop_.load(std::memory_order_acquire)) {
      std::int64_t now = monotonic_ns();
      send_due(now);
      std::int64_t next = now + kIdlePollNs;
      if (stepping) {
        std::int64_t deadline = t0_ + ticks_ * dt_ns;
        if (now >= deadline) {
          if (now - deadline > kResyncNs) {
            resync_ns_.fetch_add(now - deadline, std::memory_order_relaxed);
            t0_ = now - ticks_ * dt_ns;
            deadline = now;
            resyncs_.fetch_add(1, std::memory_order_relaxed);
          }
          // A tick is not interruptible: one started just before a reply falls due would send that reply
          // late by up to the tick's work. Serve the reply first; the tick follows it, well within dt.
          const bool reply_first = !pending_.empty() && pending_.front().due_ns - now < tick_estimate_ns_ + kSpinNs;
          if (!reply_first && physics_mu_.try_lock()) {
            const std::int64_t t_work = monotonic_ns();
            if (physics_ == Physics::Mujoco) physics_tick();
            else kinematic_tick();
            physics_mu_.unlock();
            const std::int64_t done = monotonic_ns();
            const std::int64_t work = done - t_work;
            physics_work_.add(work);
            // rises at once to a slow tick, decays slowly: tracks the tail of the work, not its mean
            tick_estimate_ns_ = work > tick_estimate_ns_ ? work : tick_estimate_ns_ - (tick_estimate_ns_ - work) / 128;
            const std::int64_t lag = done - deadline;
            physics_lag_.add(lag);
            if (lag > dt_ns) late_.fetch_add(1, std::memory_order_relaxed);
            ++ticks_;
            ticks_pub_.store(ticks_, std::memory_order_relaxed);
            steps_.fetch_add(1, std::memory_order_relaxed);
            if (physics_ == Physics::Mujoco) publish();
            continue;  // look at the bus before the next (catch-up) tick
          }
          if (!reply_first) next = now + 200000;  // the side channel is editing the sim; bus replies go on meanwhile
        } else {
          next = deadline;
        }
      }
      if (!pending_.empty()) next = std::min(next, pending_.front().due_ns - kSpinNs);
      const std::int64_t wait = std::max<std::int64_t>(0, next - monotonic_ns());
      pollfd pfd{wake_fd_, POLLIN, 0};
      timespec ts{static_cast<time_t>(wait / 1000000000LL), static_cast<long>(wait % 1000000000LL)};
      polls_.fetch_add(1, std::memory_order_relaxed);
      const std::int64_t t_poll = monotonic_ns();
      const int r = ppoll(&pfd, 1, &ts, nullptr);
      const std::int64_t t_woke = monotonic_ns();
      wait_excess_.add(t_woke - t_poll - wait);  // negative (woken early by a byte) counts as 0
      if (r > 0 && (pfd.revents & POLLIN)) {
        take_received();
        serve_work_.add(monotonic_ns() - t_woke);
      }
    }
  } catch (const std::exception& e) {
    std::lock_guard<PiMutex> lk(error_mu_);
    error_ = e.what();
  }
  running_.store(false);
}

EmulatorStats ServoEmulator::stats() const {
  EmulatorStats s;
  s.physics_steps = steps_.load();
  s.physics_late = late_.load();
  s.physics_resyncs = resyncs_.load();
  s.updates = updates_.load();
  s.polls = polls_.load();
  s.reads = reads_.load();
  s.read_errors = read_err_.load();
  s.write_errors = write_err_.load();
  s.replies_dropped = pending_.dropped();
  const std::int64_t start = start_ns_.load();
  s.wall_time_s = start ? (monotonic_ns() - start) * 1e-9 : 0.0;
  s.physics_time_s = static_cast<double>(ticks_pub_.load()) * dt_;
  s.resync_time_s = resync_ns_.load() * 1e-9;
  s.tid = tid_.load();
  s.sched_fifo = sched_fifo_.load();
  s.mlockall = mlocked_.load();
  s.running = running_.load();
  std::lock_guard<PiMutex> lk(error_mu_);
  s.error = error_;
  return s;
}

}  // namespace rt
