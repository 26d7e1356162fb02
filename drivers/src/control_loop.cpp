#include "rt/control_loop.hpp"

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <time.h>

namespace rt {
namespace {

// --- process-wide: live loops, signal e-stop, torque-off at exit -----------------------------
std::mutex& registry_mu() {
  static std::mutex m;
  return m;
}
std::vector<ControlLoop*>& registry() {
  static std::vector<ControlLoop*> r;
  return r;
}
std::atomic<int> g_signal{0};
struct sigaction g_old_int, g_old_term;
std::mutex g_handlers_mu;
// mlockall is process-wide: hold it while any real-time loop runs, release it when the last one stops,
// so a long-lived process (a notebook, a test session) does not keep every later allocation pinned.
std::mutex g_mlock_mu;
int g_mlock_users = 0;
std::once_flag g_atexit_once;

void on_signal(int sig, siginfo_t* info, void* ctx) {
  g_signal.store(sig, std::memory_order_relaxed);  // every loop sees it within one cycle
  const struct sigaction& old = sig == SIGINT ? g_old_int : g_old_term;
  if (old.sa_flags & SA_SIGINFO) {
    if (old.sa_sigaction) old.sa_sigaction(sig, info, ctx);
  } else if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN) {
    old.sa_handler(sig);  // e.g. Python's own handler, which raises KeyboardInterrupt later
  }
}

// (Re)installs the e-stop handler unless it is already the active one; whatever was there
// (Python's own SIGINT handler, a user handler, SIG_DFL) is kept and chained to.
void install_signal_handlers() {
  std::lock_guard<std::mutex> lk(g_handlers_mu);
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = on_signal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM}) {
    struct sigaction cur;
    sigaction(sig, nullptr, &cur);
    if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_signal) continue;
    sigaction(sig, &sa, sig == SIGINT ? &g_old_int : &g_old_term);
  }
}

long futex(std::atomic<std::uint32_t>* addr, int op, std::uint32_t val, const timespec* ts) {
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(addr), op, val, ts, nullptr, 0);
}

void sleep_until(std::int64_t deadline_ns) {
  timespec ts{static_cast<time_t>(deadline_ns / 1000000000LL), static_cast<long>(deadline_ns % 1000000000LL)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

// Sleeps to spin_ns before the deadline, then spins to it; true if the sleep itself overshot.
bool wait_until(std::int64_t deadline_ns, std::int64_t spin_ns) {
  if (spin_ns <= 0) {
    sleep_until(deadline_ns);
    return false;
  }
  sleep_until(deadline_ns - spin_ns);
  if (monotonic_ns() >= deadline_ns) return true;
  while (monotonic_ns() < deadline_ns) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  return false;
}

std::int64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

std::vector<double> per_joint(const std::vector<double>& v, std::size_t n, double dflt, const char* what) {
  if (v.empty()) return std::vector<double>(n, dflt);
  if (v.size() == 1) return std::vector<double>(n, v[0]);
  if (v.size() != n) throw std::invalid_argument(std::string("ControlLoop: ") + what + " needs 1 or " + std::to_string(n) + " values");
  return v;
}

}  // namespace

void ControlLoop::stop_all() {
  std::vector<ControlLoop*> loops;
  {
    std::lock_guard<std::mutex> lk(registry_mu());
    loops = registry();
  }
  for (ControlLoop* l : loops) l->stop();
}

ControlLoop::ControlLoop(ServoBus* bus, LoopConfig cfg)
    : bus_(bus),
      cfg_(std::move(cfg)),
      n_(cfg_.limits.size()),
      dt_(1.0 / cfg_.rate_hz),
      interp_(cfg_.limits, cfg_.interpolation),
      safety_(cfg_.limits) {
  if (!(cfg_.rate_hz > 0 && cfg_.rate_hz <= 10000)) throw std::invalid_argument("ControlLoop: rate_hz must be in (0, 10000]");
  if (n_ == 0 || n_ > kMaxJoints) throw std::invalid_argument("ControlLoop: 1..32 joints supported");
  if (bus_ && bus_->size() != n_)
    throw std::invalid_argument("ControlLoop: limits have " + std::to_string(n_) + " joints but the bus has " +
                                std::to_string(bus_->size()) + " servos");
  if (!(cfg_.target_duration_s > 0)) throw std::invalid_argument("ControlLoop: target_duration_s must be > 0");
  cfg_.ticks_per_unit = per_joint(cfg_.ticks_per_unit, n_, 1.0, "ticks_per_unit");
  cfg_.offset_ticks = per_joint(cfg_.offset_ticks, n_, 0.0, "offset_ticks");
  if (cfg_.sign.empty()) cfg_.sign.assign(n_, 1);
  if (cfg_.sign.size() != n_) throw std::invalid_argument("ControlLoop: sign needs one entry per joint");
  for (std::size_t i = 0; i < n_; ++i) {
    if (cfg_.sign[i] != 1 && cfg_.sign[i] != -1) throw std::invalid_argument("ControlLoop: sign entries must be +1 or -1");
    if (!(std::abs(cfg_.ticks_per_unit[i]) > 0)) throw std::invalid_argument("ControlLoop: ticks_per_unit must be non-zero");
  }
  std::vector<double> dflt_vel(n_);
  for (std::size_t i = 0; i < n_; ++i) dflt_vel[i] = 1.0 / cfg_.ticks_per_unit[i];  // raw = ticks/s
  cfg_.velocity_scale = cfg_.velocity_scale.empty() ? dflt_vel : per_joint(cfg_.velocity_scale, n_, 1.0, "velocity_scale");
  if (!(cfg_.spin_us >= 0 && cfg_.spin_us < 1e6 / cfg_.rate_hz))
    throw std::invalid_argument("ControlLoop: spin_us must be >= 0 and shorter than one period");
  if (cfg_.max_consecutive_timeouts < 1) throw std::invalid_argument("ControlLoop: max_consecutive_timeouts must be >= 1");
  raw_pos_.assign(n_, 0);
  raw_vel_.assign(n_, 0);
  raw_eff_.assign(n_, 0);
  raw_goal_.assign(n_, 0);
  fresh_buf_.reset(new bool[n_]());
  q_.assign(n_, 0.0);
  qd_.assign(n_, 0.0);
  tau_.assign(n_, 0.0);
  sp_.assign(n_, 0.0);
  target_buf_.assign(n_ + 1, 0.0);  // the joints, then the start cycle
  if (cfg_.record_capacity) {
    rec_cycle_.resize(cfg_.record_capacity);
    rec_sp_.resize(cfg_.record_capacity * n_);
    rec_tcycle_.resize(cfg_.record_capacity);
    rec_target_.resize(cfg_.record_capacity * n_);
  }
  std::call_once(g_atexit_once, [] { std::atexit([] { ControlLoop::stop_all(); }); });
}

ControlLoop::~ControlLoop() { stop(); }

std::string ControlLoop::fault() const {
  std::lock_guard<std::mutex> lk(fault_mu_);
  return fault_;
}

void ControlLoop::set_fault(const std::string& f) {
  {
    std::lock_guard<std::mutex> lk(fault_mu_);
    if (fault_.empty()) fault_ = f;
  }
  faulted_.store(true, std::memory_order_release);
}

SafetyCounters ControlLoop::safety_counters() const {
  std::lock_guard<std::mutex> lk(safety_mu_);
  return safety_snapshot_;
}

void ControlLoop::torque(bool on) {
  if (!bus_) return;
  try {
    bus_->set_torque(on);
  } catch (const std::exception&) {  // link already gone: nothing more we can do from here
  }
}

bool ControlLoop::read_joints(double* q, double* qd, double* tau, bool& link_ok, bool* io_error) {
  if (!bus_) {
    std::copy(sp_.begin(), sp_.end(), q);
    std::fill(qd, qd + n_, 0.0);
    std::fill(tau, tau + n_, 0.0);
    link_ok = true;
    return true;
  }
  ReadResult r;
  try {
    r = bus_->read_state(raw_pos_.data(), raw_vel_.data(), raw_eff_.data(), fresh_buf_.get());
  } catch (const std::exception&) {
    link_ok = false;
    return false;
  }
  for (std::size_t i = 0; i < n_; ++i) {
    if (!fresh_buf_[i]) continue;
    const double s = cfg_.sign[i];
    q[i] = s * (raw_pos_[i] - cfg_.offset_ticks[i]) / cfg_.ticks_per_unit[i];
    qd[i] = s * raw_vel_[i] * cfg_.velocity_scale[i];
    tau[i] = s * raw_eff_[i] * (cfg_.effort_scale.empty() ? 1.0 : cfg_.effort_scale[i]);
  }
  link_ok = !r.io_error && r.received == n_;
  if (io_error) *io_error = r.io_error;
  return r.received == n_;
}

void ControlLoop::write_joints(const double* sp) {
  if (!bus_) return;
  const double lo = static_cast<double>(bus_->goal_min()), hi = static_cast<double>(bus_->goal_max());
  for (std::size_t i = 0; i < n_; ++i) {
    const double raw = cfg_.offset_ticks[i] + cfg_.sign[i] * sp[i] * cfg_.ticks_per_unit[i];
    raw_goal_[i] = static_cast<std::int32_t>(std::llround(std::clamp(raw, lo, hi)));
  }
  bus_->write_goal(raw_goal_.data());
}

void ControlLoop::publish(const double* q, const double* qd, const double* tau, const double* sp, std::int64_t cycle) {
  double buf[4 * kMaxJoints + 2];
  std::copy(q, q + n_, buf);
  std::copy(qd, qd + n_, buf + n_);
  std::copy(tau, tau + n_, buf + 2 * n_);
  std::copy(sp, sp + n_, buf + 3 * n_);
  buf[4 * n_] = monotonic_ns() * 1e-9;
  buf[4 * n_ + 1] = static_cast<double>(cycle);
  state_.write(buf, 4 * n_ + 2);
  if (cycle >= 0) history_[static_cast<std::size_t>(cycle) % kHistory].write(buf, 4 * n_ + 2);
  published_cycle_.store(cycle, std::memory_order_release);
  wake_waiters();
}

void ControlLoop::wake_waiters() {
  futex_word_.fetch_add(1, std::memory_order_release);
  if (waiters_.load(std::memory_order_acquire) > 0) futex(&futex_word_, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr);
}

void ControlLoop::start() {
  std::lock_guard<std::mutex> lk(control_mu_);
  if (running_.load()) return;
  if (faulted_.load()) throw std::runtime_error("ControlLoop faulted (" + fault() + "); create a new loop");
  if (thread_.joinable()) thread_.join();
  if (cfg_.realtime && !mlocked_) {
    std::lock_guard<std::mutex> ml(g_mlock_mu);
    mlocked_ = g_mlock_users > 0 || mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0;
    if (mlocked_) ++g_mlock_users;
  }
  std::vector<double> q0(n_, 0.0);
  if (bus_) {
    bool link_ok = false;
    for (int attempt = 0; attempt < 3 && !link_ok; ++attempt) read_joints(q0.data(), qd_.data(), tau_.data(), link_ok);
    if (!link_ok) throw std::runtime_error("ControlLoop.start: servos did not answer (" + bus_->last_error() + ")");
  } else {
    for (std::size_t i = 0; i < n_; ++i) q0[i] = std::clamp(0.0, cfg_.limits.lower[i], cfg_.limits.upper[i]);
  }
  q_ = q0;
  sp_ = q0;
  interp_.reset(q0.data(), 0.0);
  safety_.reset(q0.data());
  if (bus_ && cfg_.torque_on_start) {
    write_joints(q0.data());  // goal = present pose first, so torque-on never jumps
    bus_->set_torque(true);
  }
  if (cfg_.handle_signals) {
    install_signal_handlers();
    g_signal.store(0);
  }
  rec_initial_ = q0;
  rec_n_.store(0);
  rec_tn_.store(0);
  target_seen_ = target_.version();
  last_target_ns_.store(monotonic_ns());
  watchdog_.store(static_cast<int>(Watchdog::Ok));
  published_cycle_.store(-1);
  stop_req_.store(false);
  estop_req_.store(false);
  running_.store(true, std::memory_order_release);
  {
    std::lock_guard<std::mutex> rl(registry_mu());
    registry().push_back(this);
  }
  thread_ = std::thread(&ControlLoop::run, this);
}

void ControlLoop::stop() {
  std::lock_guard<std::mutex> lk(control_mu_);
  if (thread_.joinable()) {
    stop_req_.store(true, std::memory_order_release);
    thread_.join();
  }
  if (mlocked_) {
    std::lock_guard<std::mutex> ml(g_mlock_mu);
    if (--g_mlock_users == 0) munlockall();
    mlocked_ = false;
    mlock_granted_ = true;
  }
  std::lock_guard<std::mutex> rl(registry_mu());
  auto& r = registry();
  r.erase(std::remove(r.begin(), r.end(), this), r.end());
}

void ControlLoop::estop(const std::string& why) {
  {
    std::lock_guard<std::mutex> lk(fault_mu_);
    estop_why_ = why;
  }
  estop_req_.store(true, std::memory_order_release);
  stop();  // the loop thread turns torque off on its way out
  torque(false);  // and once more from here, in case it was not running
  set_fault("e-stop: " + why);
}

bool ControlLoop::set_target(const double* q, std::size_t n, std::int64_t start_cycle) {
  if (n != n_) throw std::invalid_argument("set_target: expected " + std::to_string(n_) + " values, got " + std::to_string(n));
  for (std::size_t i = 0; i < n; ++i)
    if (!std::isfinite(q[i])) return false;
  if (!running_.load(std::memory_order_acquire)) return false;
  std::lock_guard<std::mutex> lk(target_mu_);
  last_target_ns_.store(monotonic_ns(), std::memory_order_relaxed);
  double rec[kMaxJoints + 1];
  std::copy(q, q + n, rec);
  rec[n] = static_cast<double>(start_cycle);
  target_.write(rec, n + 1);
  return true;
}

namespace {
LoopState unpack_state(const double* buf, std::size_t n) {
  LoopState s;
  s.position.assign(buf, buf + n);
  s.velocity.assign(buf + n, buf + 2 * n);
  s.effort.assign(buf + 2 * n, buf + 3 * n);
  s.setpoint.assign(buf + 3 * n, buf + 4 * n);
  s.timestamp = buf[4 * n];
  s.cycle = static_cast<std::int64_t>(buf[4 * n + 1]);
  return s;
}
}  // namespace

bool ControlLoop::state_at(std::int64_t cycle, LoopState& out) const {
  if (cycle < 0) return false;
  double buf[4 * kMaxJoints + 2];
  if (history_[static_cast<std::size_t>(cycle) % kHistory].read(buf, 4 * n_ + 2) == 0) return false;
  if (static_cast<std::int64_t>(buf[4 * n_ + 1]) != cycle) return false;
  out = unpack_state(buf, n_);
  return true;
}

LoopState ControlLoop::state() const {
  double buf[4 * kMaxJoints + 2];
  const std::uint64_t version = state_.read(buf, 4 * n_ + 2);
  LoopState s = unpack_state(buf, n_);
  if (version == 0) s.cycle = -1;
  return s;
}

std::int64_t ControlLoop::wait_cycle(std::int64_t after, double timeout_s) const {
  const std::int64_t deadline = monotonic_ns() + static_cast<std::int64_t>(timeout_s * 1e9);
  for (;;) {
    const std::uint32_t w = futex_word_.load(std::memory_order_acquire);
    const std::int64_t c = published_cycle_.load(std::memory_order_acquire);
    if (c > after || !running_.load(std::memory_order_acquire)) return c;
    const std::int64_t left = std::min<std::int64_t>(deadline - monotonic_ns(), 50000000LL);
    if (left <= 0) return c;
    timespec ts{0, static_cast<long>(left)};
    waiters_.fetch_add(1);
    futex(&futex_word_, FUTEX_WAIT_PRIVATE, w, &ts);
    waiters_.fetch_sub(1);
  }
}

Recording ControlLoop::recording() const {
  Recording r;
  const std::size_t m = rec_n_.load(std::memory_order_acquire), mt = rec_tn_.load(std::memory_order_acquire);
  r.cycle.assign(rec_cycle_.begin(), rec_cycle_.begin() + static_cast<std::ptrdiff_t>(m));
  r.setpoint.assign(rec_sp_.begin(), rec_sp_.begin() + static_cast<std::ptrdiff_t>(m * n_));
  r.target_cycle.assign(rec_tcycle_.begin(), rec_tcycle_.begin() + static_cast<std::ptrdiff_t>(mt));
  r.target.assign(rec_target_.begin(), rec_target_.begin() + static_cast<std::ptrdiff_t>(mt * n_));
  r.initial = rec_initial_;
  r.target_duration = cfg_.target_duration_s;
  r.dt = dt_;
  return r;
}

void ControlLoop::run() {
  if (cfg_.realtime) {
    sched_param sp{};
    sp.sched_priority = cfg_.priority;
    sched_fifo_ = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0;
  }
  {  // touch the stack now so a page fault never lands inside a cycle
    volatile char stack[64 * 1024];
    std::memset(const_cast<char*>(stack), 0, sizeof(stack));
  }
  const std::int64_t period_ns = std::llround(1e9 / cfg_.rate_hz);
  const std::int64_t hold_ns = static_cast<std::int64_t>(cfg_.watchdog_hold_ms * 1e6);
  const std::int64_t off_ns = static_cast<std::int64_t>(cfg_.watchdog_off_ms * 1e6);
  const bool effort_limit = !cfg_.effort_scale.empty() && bus_ && bus_->has_effort();
  const std::int64_t spin_ns = std::llround(cfg_.spin_us * 1e3);
  const std::int64_t t0 = monotonic_ns(), cpu0 = thread_cpu_ns();
  cpu_ns_.store(0, std::memory_order_relaxed);
  run_ns_.store(0, std::memory_order_relaxed);
  std::int64_t k = 0, prev_k = -1, prev_wake = 0;
  int consecutive = 0;
  int signal_seen = 0;
  for (;;) {
    const std::int64_t deadline = t0 + k * period_ns;
    if (wait_until(deadline, spin_ns)) late_wakes_.fetch_add(1, std::memory_order_relaxed);
    const std::int64_t wake = monotonic_ns();
    latency_.add(wake - deadline);
    if (prev_wake) period_.add(wake - prev_wake);
    prev_wake = wake;

    bool link_ok = true, io_error = false;
    read_joints(q_.data(), qd_.data(), tau_.data(), link_ok, &io_error);
    if (io_error) {
      set_fault("link lost: I/O error on the port (" + bus_->last_error() + ")");
      break;
    }
    consecutive = link_ok ? 0 : consecutive + 1;
    if (consecutive >= cfg_.max_consecutive_timeouts) {
      set_fault("link lost: " + std::to_string(consecutive) + " consecutive timeouts (" + bus_->last_error() + ")");
      break;
    }
    signal_seen = g_signal.load(std::memory_order_relaxed);
    if (signal_seen && cfg_.handle_signals) {
      set_fault(std::string("e-stop: signal ") + (signal_seen == SIGINT ? "SIGINT" : "SIGTERM"));
      break;
    }
    signal_seen = 0;
    if (estop_req_.load(std::memory_order_acquire)) {
      std::string why;
      {
        std::lock_guard<std::mutex> lk(fault_mu_);
        why = estop_why_;
      }
      set_fault("e-stop: " + why);
      break;
    }
    if (stop_req_.load(std::memory_order_acquire)) break;

    const double t = static_cast<double>(k) * dt_;
    const std::uint64_t v = target_.version();
    if (v != target_seen_) {
      target_seen_ = target_.read(target_buf_.data(), n_ + 1);
      const auto start_cycle = static_cast<std::int64_t>(target_buf_[n_]);
      if (watchdog() == Watchdog::Off) {  // a fresh target after torque-off: resume from where the arm is
        interp_.reset(q_.data(), t);
        safety_.reset(q_.data());
        write_joints(q_.data());  // goal = where the arm is now, before torque comes back on
        torque(true);
      }
      const bool on_tick = start_cycle >= 0 && start_cycle <= k &&
                           static_cast<double>(k - start_cycle) * dt_ < cfg_.target_duration_s;
      interp_.set_target(target_buf_.data(), on_tick ? static_cast<double>(start_cycle) * dt_ : t,
                         cfg_.target_duration_s);
      watchdog_.store(static_cast<int>(Watchdog::Ok), std::memory_order_relaxed);
      targets_applied_.fetch_add(1, std::memory_order_relaxed);
      const std::size_t j = rec_tn_.load(std::memory_order_relaxed);
      if (j < cfg_.record_capacity) {
        rec_tcycle_[j] = k;
        std::copy(target_buf_.begin(), target_buf_.begin() + static_cast<std::ptrdiff_t>(n_), rec_target_.begin() + static_cast<std::ptrdiff_t>(j * n_));
        rec_tn_.store(j + 1, std::memory_order_release);
      }
    }
    const std::int64_t age = wake - last_target_ns_.load(std::memory_order_relaxed);
    if (off_ns > 0 && age > off_ns && watchdog() != Watchdog::Off) {
      torque(false);
      watchdog_.store(static_cast<int>(Watchdog::Off), std::memory_order_relaxed);
      wd_offs_.fetch_add(1, std::memory_order_relaxed);
    } else if (hold_ns > 0 && age > hold_ns && watchdog() == Watchdog::Ok) {
      interp_.reset(safety_.last().data(), t);  // freeze at the last commanded setpoint
      watchdog_.store(static_cast<int>(Watchdog::Hold), std::memory_order_relaxed);
      wd_holds_.fetch_add(1, std::memory_order_relaxed);
    }

    if (watchdog() != Watchdog::Off) {
      interp_.setpoint(t, sp_.data());
      safety_.apply(sp_.data(), static_cast<double>(k - prev_k) * dt_, q_.data(), effort_limit ? tau_.data() : nullptr);
      prev_k = k;
      write_joints(sp_.data());
      const std::size_t j = rec_n_.load(std::memory_order_relaxed);
      if (j < cfg_.record_capacity) {
        rec_cycle_[j] = k;
        std::copy(sp_.begin(), sp_.end(), rec_sp_.begin() + static_cast<std::ptrdiff_t>(j * n_));
        rec_n_.store(j + 1, std::memory_order_release);
      }
    }
    if (safety_mu_.try_lock()) {
      safety_snapshot_ = safety_.counters();
      safety_mu_.unlock();
    }
    publish(q_.data(), qd_.data(), tau_.data(), sp_.data(), k);
    cycles_.fetch_add(1, std::memory_order_relaxed);

    const std::int64_t end = monotonic_ns();
    work_.add(end - wake);
    if ((k & 63) == 0) {  // a thread-CPU-clock read is a syscall: every 64 cycles is plenty for a rate
      cpu_ns_.store(thread_cpu_ns() - cpu0, std::memory_order_relaxed);
      run_ns_.store(end - t0, std::memory_order_relaxed);
    }
    std::int64_t next = k + 1;
    if (end > t0 + next * period_ns) {  // missed the next deadline: count it, skip, never burst
      overruns_.fetch_add(1, std::memory_order_relaxed);
      const std::int64_t skip_to = (end - t0) / period_ns + 1;
      missed_.fetch_add(static_cast<std::uint64_t>(skip_to - next), std::memory_order_relaxed);
      next = skip_to;
    }
    k = next;
  }
  cpu_ns_.store(thread_cpu_ns() - cpu0, std::memory_order_relaxed);
  run_ns_.store(monotonic_ns() - t0, std::memory_order_relaxed);
  torque(false);
  if (safety_mu_.try_lock()) {
    safety_snapshot_ = safety_.counters();
    safety_mu_.unlock();
  }
  running_.store(false, std::memory_order_release);
  wake_waiters();
  if (signal_seen) {
    // Other loops torque off too before a default-action signal ends the process.
    std::vector<ControlLoop*> loops;
    {
      std::lock_guard<std::mutex> lk(registry_mu());
      loops = registry();
    }
    for (ControlLoop* l : loops)
      if (l != this) l->torque(false);
    const struct sigaction& old = signal_seen == SIGINT ? g_old_int : g_old_term;
    if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL) {
      signal(signal_seen, SIG_DFL);
      kill(getpid(), signal_seen);
    }
  }
}

}  // namespace rt
