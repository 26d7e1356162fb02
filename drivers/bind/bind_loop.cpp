// Python bindings for the real-time ControlLoop. Everything that can block releases the GIL.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <optional>
#include <stdexcept>

#include "rt/control_loop.hpp"

namespace nb = nanobind;
using namespace nb::literals;
using Vec = nb::ndarray<const double, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

nb::dict bus_stats(const rt::ServoBus& bus);

namespace {

template <typename T>
nb::ndarray<nb::numpy, T> array(const std::vector<T>& v, std::size_t rows, std::size_t cols) {
  auto* buf = new T[v.size() ? v.size() : 1];
  std::copy(v.begin(), v.end(), buf);
  nb::capsule owner(buf, [](void* p) noexcept { delete[] static_cast<T*>(p); });
  if (cols == 0) return nb::ndarray<nb::numpy, T>(buf, {rows}, owner);
  return nb::ndarray<nb::numpy, T>(buf, {rows, cols}, owner);
}

const char* watchdog_name(rt::Watchdog w) {
  switch (w) {
    case rt::Watchdog::Ok: return "ok";
    case rt::Watchdog::Hold: return "hold";
    case rt::Watchdog::Off: return "off";
  }
  return "?";
}

nb::dict state_dict(const rt::LoopState& s, const rt::ControlLoop& l) {
  nb::dict d;
  d["position"] = array(s.position, s.position.size(), 0);
  d["velocity"] = array(s.velocity, s.velocity.size(), 0);
  d["effort"] = array(s.effort, s.effort.size(), 0);
  d["setpoint"] = array(s.setpoint, s.setpoint.size(), 0);
  d["timestamp"] = s.timestamp;
  d["cycle"] = s.cycle;
  d["watchdog"] = watchdog_name(l.watchdog());
  return d;
}

void raise_if_faulted(const rt::ControlLoop& l) {
  if (l.faulted()) throw std::runtime_error("control loop stopped: " + l.fault());
}

}  // namespace

void bind_loop(nb::module_& m) {
  nb::class_<rt::ControlLoop>(m, "ControlLoop",
                              "Fixed-rate servo loop in its own thread: read -> interpolate -> safety -> write.")
      .def("__init__",
           [](rt::ControlLoop* self, rt::ServoBus* bus, double rate_hz, rt::JointLimits limits,
              rt::Interpolation interpolation, double target_duration_s, std::vector<double> ticks_per_unit,
              std::vector<double> offset_ticks, std::vector<int> sign, std::optional<std::vector<double>> velocity_scale,
              std::optional<std::vector<double>> effort_scale, double watchdog_hold_ms, double watchdog_off_ms,
              int max_consecutive_timeouts, bool realtime, int priority, bool handle_signals, bool torque_on_start,
              std::size_t record_setpoints, double spin_us) {
             rt::LoopConfig c;
             c.rate_hz = rate_hz;
             c.limits = std::move(limits);
             c.limits.validate();
             c.interpolation = interpolation;
             c.target_duration_s = target_duration_s;
             c.ticks_per_unit = std::move(ticks_per_unit);
             c.offset_ticks = std::move(offset_ticks);
             c.sign = std::move(sign);
             if (velocity_scale) c.velocity_scale = *velocity_scale;
             if (effort_scale) c.effort_scale = *effort_scale;
             if (effort_scale && effort_scale->size() == 1) c.effort_scale.assign(c.limits.size(), (*effort_scale)[0]);
             if (!c.effort_scale.empty() && c.effort_scale.size() != c.limits.size())
               throw std::invalid_argument("ControlLoop: effort_scale needs 1 or n values");
             c.watchdog_hold_ms = watchdog_hold_ms;
             c.watchdog_off_ms = watchdog_off_ms;
             c.max_consecutive_timeouts = max_consecutive_timeouts;
             c.realtime = realtime;
             c.priority = priority;
             c.handle_signals = handle_signals;
             c.torque_on_start = torque_on_start;
             c.record_capacity = record_setpoints;
             c.spin_us = spin_us;
             new (self) rt::ControlLoop(bus, std::move(c));
           },
           "bus"_a.none(), "rate_hz"_a = 500.0, "limits"_a, "interpolation"_a = rt::Interpolation::MinJerk,
           "target_duration_s"_a = 0.1, "ticks_per_unit"_a = std::vector<double>{}, "offset_ticks"_a = std::vector<double>{},
           "sign"_a = std::vector<int>{}, "velocity_scale"_a = nb::none(), "effort_scale"_a = nb::none(),
           "watchdog_hold_ms"_a = 250.0, "watchdog_off_ms"_a = 2000.0, "max_consecutive_timeouts"_a = 5,
           "realtime"_a = true, "priority"_a = 80, "handle_signals"_a = false, "torque_on_start"_a = true,
           "record_setpoints"_a = 0, "spin_us"_a = 0.0, nb::keep_alive<1, 2>(),
           "bus=None runs the loop with ideal servos (timing only). Joint i in SI = sign[i] * (raw - "
           "offset_ticks[i]) / ticks_per_unit[i]; velocity_scale/effort_scale are SI per raw unit (effort "
           "limits are enforced only when effort_scale is given). spin_us > 0 sleeps to spin_us before each "
           "deadline and busy-waits the rest (robust to a halting virtual CPU; costs ~spin_us * rate_hz of "
           "CPU per second).")
      .def("start", &rt::ControlLoop::start, nb::call_guard<nb::gil_scoped_release>(),
           "Reads the pose, sets goal = pose, torque on, starts the thread.")
      .def("stop", &rt::ControlLoop::stop, nb::call_guard<nb::gil_scoped_release>(),
           "Torque off and join the thread; idempotent.")
      .def("estop", &rt::ControlLoop::estop, "why"_a = "requested from Python", nb::call_guard<nb::gil_scoped_release>(),
           "Torque off now and latch a fault; the loop cannot be restarted.")
      .def("set_target",
           [](rt::ControlLoop& l, Vec q, std::int64_t start_cycle) { return l.set_target(q.data(), q.shape(0), start_cycle); },
           "target"_a, "start_cycle"_a = -1,
           "Publishes a joint target (SI). False if it holds NaN/inf or the loop is not running. start_cycle >= 0 "
           "starts its segment at that cycle (the control tick it was computed at) instead of the cycle that picks "
           "it up, unless that is more than one target duration ago.")
      .def_ro_static("HISTORY", &rt::ControlLoop::kHistory, "cycles whose state state_at() can still return")
      .def("state", [](const rt::ControlLoop& l) { return state_dict(l.state(), l); },
           "Latest published state (SI); timestamp is CLOCK_MONOTONIC seconds.")
      .def("state_at",
           [](const rt::ControlLoop& l, std::int64_t cycle) -> nb::object {
             rt::LoopState s;
             if (!l.state_at(cycle, s)) return nb::none();
             return state_dict(s, l);
           },
           "cycle"_a,
           "The state published at `cycle` (one of the last ControlLoop.HISTORY cycles), or None if it is older, "
           "was skipped, or is not yet published.")
      .def("wait_cycle",
           [](const rt::ControlLoop& l, std::int64_t after, double timeout_s) {
             std::int64_t c;
             {
               nb::gil_scoped_release nogil;
               c = l.wait_cycle(after, timeout_s);
             }
             raise_if_faulted(l);
             return c;
           },
           "after_cycle"_a, "timeout_s"_a = 1.0,
           "Blocks (GIL released) until a cycle > after_cycle; returns the latest cycle (<= after_cycle on "
           "timeout or when stopped). Raises RuntimeError with the fault if the loop faulted.")
      .def("stats",
           [](const rt::ControlLoop& l) {
             nb::dict d = l.bus() ? bus_stats(*l.bus()) : nb::dict();
             for (const char* k : {"rtt_p50_us", "rtt_p99_us", "rtt_max_us"})
               if (d.contains(k)) d[(std::string("bus_") + k).c_str()] = d[k];
             d["rate_hz"] = l.config().rate_hz;
             d["cycles"] = l.cycles();
             d["overruns"] = l.overruns();
             d["missed_cycles"] = l.missed_cycles();
             d["overrun_fraction"] = l.cycles() ? static_cast<double>(l.overruns()) / l.cycles() : 0.0;
             const double per_us = 1e6 / l.config().rate_hz;
             d["period_us"] = per_us;
             d["period_p50_us"] = l.period().quantile_us(0.5);
             d["period_p99_us"] = l.period().quantile_us(0.99);
             d["period_p999_us"] = l.period().quantile_us(0.999);
             d["period_max_us"] = l.period().max_us();
             d["period_mean_us"] = l.period().mean_us();
             d["latency_p50_us"] = l.latency().quantile_us(0.5);
             d["latency_p99_us"] = l.latency().quantile_us(0.99);
             d["latency_p999_us"] = l.latency().quantile_us(0.999);
             d["latency_max_us"] = l.latency().max_us();
             d["work_p50_us"] = l.work().quantile_us(0.5);
             d["work_p99_us"] = l.work().quantile_us(0.99);
             d["work_max_us"] = l.work().max_us();
             d["sched_fifo"] = l.sched_fifo();
             d["mlockall"] = l.mlocked();
             d["wait_mode"] = l.wait_mode();
             d["spin_us"] = l.config().spin_us;
             d["late_wakes"] = l.late_wakes();
             d["cpu_seconds"] = l.cpu_seconds();
             d["run_seconds"] = l.run_seconds();
             d["cpu_fraction"] = l.run_seconds() > 0 ? l.cpu_seconds() / l.run_seconds() : 0.0;
             d["watchdog"] = watchdog_name(l.watchdog());
             d["watchdog_holds"] = l.watchdog_holds();
             d["watchdog_offs"] = l.watchdog_offs();
             d["targets_applied"] = l.targets_applied();
             const rt::SafetyCounters s = l.safety_counters();
             d["position_clamps"] = s.position_clamps;
             d["velocity_clamps"] = s.velocity_clamps;
             d["effort_holds"] = s.effort_holds;
             d["nonfinite_setpoints"] = s.nonfinite;
             d["running"] = l.running();
             return d;
           },
           "Loop timing (period/latency/work percentiles, overruns), bus counters and safety events.")
      .def_prop_ro("fault", [](const rt::ControlLoop& l) -> std::optional<std::string> {
             if (!l.faulted()) return std::nullopt;
             return l.fault();
           }, "None, or why the loop stopped commanding (link lost, e-stop).")
      .def_prop_ro("setpoints", [](const rt::ControlLoop& l) -> nb::object {
             if (l.config().record_capacity == 0) return nb::none();
             const rt::Recording r = l.recording();
             const std::size_t n = l.size();
             nb::dict d;
             d["cycle"] = array(r.cycle, r.cycle.size(), 0);
             d["setpoint"] = array(r.setpoint, r.cycle.size(), n);
             d["target_cycle"] = array(r.target_cycle, r.target_cycle.size(), 0);
             d["target"] = array(r.target, r.target_cycle.size(), n);
             d["initial_position"] = array(r.initial, r.initial.size(), 0);
             d["target_duration"] = r.target_duration;
             d["dt"] = r.dt;
             return d;
           }, "Recorded (cycle, setpoint) stream and applied targets when record_setpoints > 0, else None.")
      .def_prop_ro("interpolation", [](const rt::ControlLoop& l) { return l.config().interpolation; },
                   "The target interpolation this loop runs (LoopConfig.interpolation).")
      .def_prop_ro("running", &rt::ControlLoop::running)
      .def_prop_ro("size", &rt::ControlLoop::size);
}
