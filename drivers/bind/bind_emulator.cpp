// Python bindings of the emulated servo chain's device side (rt/emu_bank.hpp, rt/emu_arm.hpp).
// Python configures it and reads its registers, logs and timing; the serving thread never takes
// the GIL. Calls that wait on the emulator's locks release the GIL first.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <memory>
#include <mutex>
#include <stdexcept>

#include "bind_util.hpp"
#include "rt/emu_arm.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using bind_util::Vec;
using bind_util::checked;

template <class T>
nb::ndarray<nb::numpy, T> array(const std::vector<T>& v, std::size_t rows, std::size_t cols) {
  auto* buf = new T[std::max<std::size_t>(v.size(), 1)];
  std::copy(v.begin(), v.end(), buf);
  nb::capsule owner(buf, [](void* p) noexcept { delete[] static_cast<T*>(p); });
  if (cols == 0) return nb::ndarray<nb::numpy, T>(buf, {rows}, owner);
  return nb::ndarray<nb::numpy, T>(buf, {rows, cols}, owner);
}

std::size_t slot(rt::RegisterBank& b, int id) {
  const int k = id >= 0 && id < 256 ? b.index_of(static_cast<std::uint8_t>(id)) : -1;
  if (k < 0) throw std::invalid_argument("no servo with id " + std::to_string(id));
  return static_cast<std::size_t>(k);
}

nb::dict histogram(const rt::Histogram& h) {
  nb::dict d;
  d["count"] = h.count();
  d["p50_us"] = h.quantile_us(0.5);
  d["p99_us"] = h.quantile_us(0.99);
  d["p999_us"] = h.quantile_us(0.999);
  d["max_us"] = h.max_us();
  d["mean_us"] = h.mean_us();
  return d;
}

}  // namespace

void bind_emulator(nb::module_& m) {
  nb::enum_<rt::ServoEmulator::Physics>(m, "EmulatorPhysics")
      .value("MUJOCO", rt::ServoEmulator::Physics::Mujoco)
      .value("EXTERNAL", rt::ServoEmulator::Physics::External)
      .value("KINEMATIC", rt::ServoEmulator::Physics::Kinematic);

  nb::class_<rt::ServoModelConfig>(m, "ServoModelConfig", "How the emulated servos are mounted and the hidden gap.")
      .def(nb::init<>())
      .def_rw("n_joints", &rt::ServoModelConfig::n_joints)
      .def_rw("servo_joint", &rt::ServoModelConfig::servo_joint)
      .def_rw("mirrors", &rt::ServoModelConfig::mirrors)
      .def_rw("lower", &rt::ServoModelConfig::lower)
      .def_rw("upper", &rt::ServoModelConfig::upper)
      .def_rw("offset", &rt::ServoModelConfig::offset)
      .def_rw("sign", &rt::ServoModelConfig::sign)
      .def_rw("ticks_per_unit", &rt::ServoModelConfig::ticks_per_unit)
      .def_rw("position_modes", &rt::ServoModelConfig::position_modes)
      .def_rw("resolution", &rt::ServoModelConfig::resolution)
      .def_rw("velocity_unit_rad_s", &rt::ServoModelConfig::velocity_unit_rad_s)
      .def_rw("latency_s", &rt::ServoModelConfig::latency_s)
      .def_rw("backlash", &rt::ServoModelConfig::backlash)
      .def_rw("noise_std", &rt::ServoModelConfig::noise_std)
      .def_rw("effort_register", &rt::ServoModelConfig::effort_register)
      .def_rw("effort_scale", &rt::ServoModelConfig::effort_scale)
      .def_rw("effort_noise", &rt::ServoModelConfig::effort_noise)
      .def_rw("effort_max_raw", &rt::ServoModelConfig::effort_max_raw)
      .def_rw("seed", &rt::ServoModelConfig::seed);

  nb::class_<rt::DelayLine>(m, "DelayLine", "The value pushed `delay_s` ago (the newest when the delay is zero).")
      .def(nb::init<double, std::size_t, std::size_t>(), "delay_s"_a, "width"_a, "capacity"_a = 1024)
      .def("__call__", [](rt::DelayLine& d, double t, Vec v) {
             const double* row = d.push(t, v.data());
             return array(std::vector<double>(row, row + v.shape(0)), v.shape(0), 0);
           }, "t"_a, "value"_a);

  nb::class_<rt::Backlash>(m, "Backlash", "Gear play: the output moves only once the input leaves a dead band.")
      .def(nb::init<std::vector<double>, std::vector<double>>(), "width"_a, "initial"_a)
      .def("__call__", [](rt::Backlash& b, Vec q) {
             std::vector<double> v(q.data(), q.data() + q.shape(0));
             b.apply(v.data());
             return array(v, v.size(), 0);
           }, "q"_a);

  nb::class_<rt::ServoEmulator>(m, "ServoEmulator",
                                "Device side of a servo chain on a pty master: register bank, protocol responder, "
                                "servo model and physics stepping in one real-time thread (and a pty reader thread).")
      .def("__init__",
           [](rt::ServoEmulator* self, const std::string& protocol, std::vector<int> ids, nb::dict table,
              std::vector<nb::bytes> memory, nb::bytes writable, std::map<int, int> baud_codes, bool wire_time,
              int master_fd, rt::ServoModelConfig model, rt::ServoEmulator::Physics physics, double tick_hz,
              int ticks_per_update, double follow_tau_s, bool realtime, int priority, bool lock_memory,
              std::size_t goal_log_capacity) {
             std::vector<rt::Bytes> mem;
             for (const auto& b : memory) {
               const auto* p = reinterpret_cast<const std::uint8_t*>(b.c_str());
               mem.emplace_back(p, p + b.size());
             }
             const auto* w = reinterpret_cast<const std::uint8_t*>(writable.c_str());
             auto bank = std::make_unique<rt::RegisterBank>(rt::parse_protocol(protocol), std::move(ids),
                                                            bind_util::parse_fields(table), std::move(mem),
                                                            std::vector<std::uint8_t>(w, w + writable.size()),
                                                            goal_log_capacity);
             new (self) rt::ServoEmulator(std::move(bank), std::move(baud_codes), wire_time, master_fd,
                                          std::move(model), physics, tick_hz, ticks_per_update, follow_tau_s,
                                          realtime, priority, lock_memory);
           },
           "protocol"_a, "ids"_a, "table"_a, "memory"_a, "writable"_a, "baud_codes"_a, "wire_time"_a, "master_fd"_a,
           "model"_a, "physics"_a, "tick_hz"_a, "ticks_per_update"_a = 1, "follow_tau_s"_a = 0.01,
           "realtime"_a = true, "priority"_a = 80, "lock_memory"_a = false, "goal_log_capacity"_a = 100000)
      .def("attach_mujoco",
           [](rt::ServoEmulator& e, rt::MujocoStepper& stepper, rt::JointDrive& drive, std::uintptr_t qpos,
              std::size_t nq, std::uintptr_t qvel, std::vector<int> qpos_index, std::vector<int> qvel_index) {
             e.attach_mujoco(&stepper, &drive, reinterpret_cast<const double*>(qpos), nq,
                             reinterpret_cast<const double*>(qvel), std::move(qpos_index), std::move(qvel_index));
           },
           "stepper"_a, "drive"_a, "qpos"_a, "nq"_a, "qvel"_a, "qpos_index"_a, "qvel_index"_a,
           nb::keep_alive<1, 2>(), nb::keep_alive<1, 3>(),
           "Step this MuJoCo sim from the emulator thread (addresses of mjData's qpos/qvel arrays).")
      .def("set_initial", [](rt::ServoEmulator& e, Vec q, Vec qd) {
             const std::size_t n = q.shape(0);
             e.set_initial(q.data(), checked(qd, n, "qd"));
           }, "q"_a, "qd"_a)
      .def("start", &rt::ServoEmulator::start, nb::call_guard<nb::gil_scoped_release>())
      .def("stop", &rt::ServoEmulator::stop, nb::call_guard<nb::gil_scoped_release>())
      .def("targets", [](rt::ServoEmulator& e, double t) {
             std::vector<double> out(e.last_target().size());
             e.targets(t, out.data());
             return array(out, out.size(), 0);
           }, "t"_a, "External physics: joint targets for the next control period.")
      .def("feedback", [](rt::ServoEmulator& e, double t, Vec q, Vec qd, std::optional<Vec> tau) {
             const std::size_t n = q.shape(0);
             e.feedback(t, q.data(), checked(qd, n, "qd"), tau ? checked(*tau, n, "tau") : nullptr);
           }, "t"_a, "q"_a, "qd"_a, "tau"_a.none() = nb::none(),
           "External physics: joint state after the period and the servo torque that produced it "
           "(-> present_* registers; no tau: zero effort).")
      .def("set_hold", [](rt::ServoEmulator& e, std::optional<Vec> q) {
             nb::gil_scoped_release nogil;
             e.set_hold(q ? q->data() : nullptr);
           }, "q"_a.none())
      .def("lock_physics", &rt::ServoEmulator::lock_physics, nb::call_guard<nb::gil_scoped_release>())
      .def("unlock_physics", &rt::ServoEmulator::unlock_physics)
      .def("snapshot", [](const rt::ServoEmulator& e) {
             double t = 0;
             auto v = e.snapshot(&t);
             return nb::make_tuple(array(v, v.size(), 0), t);
           }, "(qpos, physics time): the state after the latest physics tick.")
      .def("last_target", [](const rt::ServoEmulator& e) { auto v = e.last_target(); return array(v, v.size(), 0); },
           "The joint targets last handed to the physics.")
      .def("joint_positions", [](const rt::ServoEmulator& e) { auto v = e.joint_positions(); return array(v, v.size(), 0); },
           "The sim's joint positions after the latest servo update (before latency and noise).")
      .def("get", [](rt::ServoEmulator& e, int id, const std::string& name) {
             auto& b = e.bank();
             const rt::Field& f = b.require(name);
             const std::size_t k = slot(b, id);
             nb::gil_scoped_release nogil;
             std::lock_guard<rt::PiMutex> lk(b.mutex());
             return b.get(k, f);
           }, "id"_a, "name"_a, "Register value (signed per the table).")
      .def("set", [](rt::ServoEmulator& e, int id, const std::string& name, std::int64_t value) {
             auto& b = e.bank();
             const rt::Field& f = b.require(name);
             const std::size_t k = slot(b, id);
             nb::gil_scoped_release nogil;
             std::lock_guard<rt::PiMutex> lk(b.mutex());
             b.set(k, f, value);
           }, "id"_a, "name"_a, "value"_a, "Device-side register write (the servo updating itself).")
      .def("has", [](rt::ServoEmulator& e, const std::string& name) { return e.bank().field(name) != nullptr; })
      .def_prop_ro("ids", [](rt::ServoEmulator& e) {
             std::vector<int> v(e.bank().ids().begin(), e.bank().ids().end());
             return v;
           })
      .def("set_silent", [](rt::ServoEmulator& e, int id, bool silent) {
             slot(e.bank(), id);
             e.responder().set_silent(static_cast<std::uint8_t>(id), silent);
           }, "id"_a, "silent"_a = true)
      .def("clear_silent", [](rt::ServoEmulator& e) { e.responder().clear_silent(); })
      .def("corrupt_next", [](rt::ServoEmulator& e, int n) {
             nb::gil_scoped_release nogil;
             std::lock_guard<rt::PiMutex> lk(e.bank().mutex());
             e.responder().corrupt_next(n);
           }, "n"_a, "The next n status packets carry a wrong checksum byte.")
      .def("set_corruption", [](rt::ServoEmulator& e, double p, std::uint64_t seed) {
             nb::gil_scoped_release nogil;
             std::lock_guard<rt::PiMutex> lk(e.bank().mutex());
             e.responder().set_corruption(p, seed);
           }, "probability"_a, "seed"_a = 0, "Each status packet gets one random bit flipped with this probability.")
      .def("goal_log", [](rt::ServoEmulator& e) {
             rt::GoalLog g;
             {
               nb::gil_scoped_release nogil;
               g = e.bank().goal_log();
             }
             std::vector<double> t(g.t_ns.size());
             for (std::size_t i = 0; i < t.size(); ++i) t[i] = g.t_ns[i] * 1e-9;
             return nb::make_tuple(array(t, t.size(), 0), array(g.goals, t.size(), e.bank().size()));
           }, "(t [s, CLOCK_MONOTONIC], goals [writes x servos]): goal_position of every servo after each host write "
              "that touched it, as the servos received it (bounded; see stats()['goal_log_dropped']).")
      .def("clear_goal_log", [](rt::ServoEmulator& e) {
             nb::gil_scoped_release nogil;
             e.bank().clear_goal_log();
           })
      .def_prop_ro("baud", [](rt::ServoEmulator& e) {
             nb::gil_scoped_release nogil;
             std::lock_guard<rt::PiMutex> lk(e.bank().mutex());
             return e.responder().baud();
           })
      .def_prop_ro("tick_s", &rt::ServoEmulator::tick_s)
      .def("stats", [](rt::ServoEmulator& e) {
             rt::EmulatorStats s;
             rt::ResponderCounters c;
             rt::DecoderCounters dc;
             std::uint64_t dropped;
             {
               nb::gil_scoped_release nogil;
               s = e.stats();
               c = e.responder().counters();
               dc = e.responder().decoder_counters();
               std::lock_guard<rt::PiMutex> lk(e.bank().mutex());
               dropped = e.bank().goal_log_dropped();
             }
             nb::dict d;
             d["requests"] = c.requests;
             d["replies"] = c.replies;
             d["unknown_instruction"] = c.unknown_instruction;
             d["corrupted_replies"] = c.corrupted_replies;
             d["bad_frames"] = dc.errors();
             d["physics_steps"] = s.physics_steps;
             d["physics_late"] = s.physics_late;
             d["physics_resyncs"] = s.physics_resyncs;
             d["servo_updates"] = s.updates;
             d["wall_time_s"] = s.wall_time_s;
             d["tid"] = s.tid;
             d["physics_time_s"] = s.physics_time_s;
             d["resync_time_s"] = s.resync_time_s;
             d["read_errors"] = s.read_errors;
             d["write_errors"] = s.write_errors;
             d["replies_dropped"] = s.replies_dropped;
             d["goal_log_dropped"] = dropped;
             d["sched_fifo"] = s.sched_fifo;
             d["mlockall"] = s.mlockall;
             d["running"] = s.running;
             d["thread_error"] = s.error;  // not "error": side-channel replies use that key for failures
             d["reply_latency"] = histogram(e.reply_latency());
             d["reply_lateness"] = histogram(e.reply_lateness());
             d["physics_lag"] = histogram(e.physics_lag());
             d["physics_work"] = histogram(e.physics_work());
             d["wait_excess"] = histogram(e.wait_excess());
             d["serve_work"] = histogram(e.serve_work());
             return d;
           }, "Counters and timing: reply latency (instruction read -> status written), reply lateness "
              "(written - due on the wire schedule), physics lag (tick done - its wall-clock deadline).");
}
