#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/vector.h>

#include <optional>
#include <stdexcept>
#include <vector>

#include "bind_util.hpp"
#include "rt/sim_drive.hpp"

namespace nb = nanobind;
using bind_util::Vec;
using bind_util::checked;
using bind_util::OutVec;

namespace {

OutVec to_numpy(const std::vector<double>& v) {
  auto* buf = new double[v.size()];
  std::copy(v.begin(), v.end(), buf);
  nb::capsule owner(buf, [](void* p) noexcept { delete[] static_cast<double*>(p); });
  return OutVec(buf, {v.size()}, owner);
}

}  // namespace

void bind_control(nb::module_& m) {
  nb::enum_<rt::Interpolation>(m, "Interpolation")
      .value("LINEAR", rt::Interpolation::Linear)
      .value("MIN_JERK", rt::Interpolation::MinJerk);

  nb::class_<rt::JointLimits>(m, "JointLimits")
      .def(nb::init<>())
      .def("__init__",
           [](rt::JointLimits* self, std::vector<double> lo, std::vector<double> hi, std::vector<double> vel,
              std::vector<double> eff) {
             new (self) rt::JointLimits{std::move(lo), std::move(hi), std::move(vel), std::move(eff)};
             self->validate();
           },
           nb::arg("lower"), nb::arg("upper"), nb::arg("max_velocity"), nb::arg("max_effort"))
      .def_rw("lower", &rt::JointLimits::lower)
      .def_rw("upper", &rt::JointLimits::upper)
      .def_rw("max_velocity", &rt::JointLimits::max_velocity)
      .def_rw("max_effort", &rt::JointLimits::max_effort);

  nb::class_<rt::JointDrive>(m, "JointDrive",
                             "Target interpolation + servo model, one compute() per physics tick.")
      .def(nb::init<rt::JointLimits, std::vector<double>, std::vector<double>, rt::Interpolation, double,
                    std::vector<double>, std::vector<double>>(),
           nb::arg("limits"), nb::arg("kp"), nb::arg("kd"), nb::arg("interpolation"), nb::arg("physics_dt"),
           nb::arg("goal_ticks_per_unit") = std::vector<double>{}, nb::arg("backlash") = std::vector<double>{},
           "`goal_ticks_per_unit` (one per joint, 0: continuous): the servo tracks its setpoint rounded to its "
           "goal register's ticks, as a real servo does. `backlash` (one per joint, rad or m): gear play between "
           "that goal and what the servo tracks, applied every physics tick as the emulated servos apply it.")
      .def("reset",
           [](rt::JointDrive& d, Vec q, std::optional<Vec> play) {
             d.reset(checked(q, d.size(), "q"), play ? checked(*play, d.size(), "play") : nullptr);
           },
           nb::arg("q"), nb::arg("play") = nb::none(),
           "`play`: where the gear play leaves each servo's goal (default: at q).")
      .def("set_target",
           [](rt::JointDrive& d, Vec target, double duration, double delay) {
             return d.set_target(checked(target, d.size(), "target"), duration, delay);
           },
           nb::arg("target"), nb::arg("duration"), nb::arg("delay") = 0.0,
           "Returns False (and keeps the previous target) if the target holds NaN/inf. The segment starts "
           "`delay` s after the drive's clock (a sub-tick command latency).")
      .def("compute",
           [](rt::JointDrive& d, Vec q, Vec qd) {
             std::vector<double> tau(d.size());
             d.compute(checked(q, d.size(), "q"), checked(qd, d.size(), "qd"), tau.data());
             return to_numpy(tau);
           },
           nb::arg("q"), nb::arg("qd"))
      .def_prop_ro("setpoint", [](const rt::JointDrive& d) { return to_numpy(d.setpoint()); }, nb::rv_policy::move)
      .def_prop_ro("target", [](const rt::JointDrive& d) { return to_numpy(d.target()); }, nb::rv_policy::move)
      .def_prop_ro("time", &rt::JointDrive::time)
      .def_prop_ro("dt", &rt::JointDrive::dt)
      .def_prop_ro("interpolation", &rt::JointDrive::interpolation)
      .def_prop_ro("size", &rt::JointDrive::size);

  nb::class_<rt::MujocoStepper>(m, "MujocoStepper")
      .def(nb::init<std::uintptr_t, std::uintptr_t, std::uintptr_t, std::uintptr_t, std::uintptr_t,
                    std::uintptr_t, std::vector<int>, std::vector<int>, std::vector<int>>(),
           nb::arg("mj_step"), nb::arg("model"), nb::arg("data"), nb::arg("qpos"), nb::arg("qvel"),
           nb::arg("ctrl"), nb::arg("qpos_index"), nb::arg("qvel_index"), nb::arg("ctrl_index"))
      .def("step", &rt::MujocoStepper::step, nb::arg("drive"), nb::arg("ticks"),
           nb::call_guard<nb::gil_scoped_release>())
      .def_prop_ro("torque", [](const rt::MujocoStepper& s) { return to_numpy(s.torque()); }, nb::rv_policy::move,
                   "The servo torque of the last tick (what present current measures).");
}
