// Python bindings for the PyBullet per-tick drive (robotlearn/sim/pybullet_arm.py builds it).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <utility>

#include "bind_util.hpp"
#include "rt/pybullet_drive.hpp"

namespace nb = nanobind;
using namespace nb::literals;
using bind_util::OutVec;
using bind_util::new_vec;


void bind_pybullet(nb::module_& m) {
  nb::class_<rt::PybulletApi>(m, "PybulletApi", "Addresses of the b3* C API functions in the loaded pybullet module.")
      .def(nb::init<>())
      .def_rw("can_submit", &rt::PybulletApi::can_submit)
      .def_rw("submit", &rt::PybulletApi::submit)
      .def_rw("init_step", &rt::PybulletApi::init_step)
      .def_rw("request_state", &rt::PybulletApi::request_state)
      .def_rw("status_state", &rt::PybulletApi::status_state)
      .def_rw("joint_control_init", &rt::PybulletApi::joint_control_init)
      .def_rw("set_force_torque", &rt::PybulletApi::set_force_torque)
      .def_rw("mass_matrix_init", &rt::PybulletApi::mass_matrix_init)
      .def_rw("mass_matrix_flags", &rt::PybulletApi::mass_matrix_flags)
      .def_rw("status_mass_matrix", &rt::PybulletApi::status_mass_matrix)
      .def_rw("inverse_dynamics_init", &rt::PybulletApi::inverse_dynamics_init)
      .def_rw("inverse_dynamics_flags", &rt::PybulletApi::inverse_dynamics_flags)
      .def_rw("status_inverse_dynamics", &rt::PybulletApi::status_inverse_dynamics);

  nb::class_<rt::PybulletStepper>(m, "PybulletStepper",
                                  "Drive -> armature-corrected joint torques -> stepSimulation, every physics tick, in C++.")
      .def(nb::init<rt::PybulletApi, std::uintptr_t, int, std::vector<int>, std::vector<int>, std::vector<double>,
                    std::vector<double>, double, int, int>(),
           "api"_a, "client"_a, "body"_a, "q_index"_a, "u_index"_a, "damping"_a, "armature"_a, "dt"_a,
           "mass_refresh_ticks"_a, "torque_mode"_a)
      .def("reset", &rt::PybulletStepper::reset, "body"_a)
      // Keeps the GIL, as the pybullet module does: its physics clients are not thread-safe, and
      // another Python thread could otherwise call into the same client mid-step.
      .def("step", &rt::PybulletStepper::step, "drive"_a, "ticks"_a)
      .def("read",
           [](rt::PybulletStepper& s) {
             double *q, *qd;
             OutVec a = new_vec(s.size(), &q), b = new_vec(s.size(), &qd);
             s.read(q, qd);
             return std::make_pair(a, b);
           },
           "(joint positions, joint velocities) as Bullet reports them now.")
      .def_prop_ro("servo_torque", [](const rt::PybulletStepper& s) {
                     double* out;
                     OutVec v = new_vec(s.size(), &out);
                     std::copy(s.servo_torque().begin(), s.servo_torque().end(), out);
                     return v;
                   },
                   nb::rv_policy::move, "The servo torque of the last tick (what present current measures).")
      .def_prop_ro("applied_torques",
                   [](const rt::PybulletStepper& s) {
                     const std::vector<double>& v = s.applied_torques();
                     double* out;
                     OutVec flat = new_vec(v.size(), &out);
                     std::copy(v.begin(), v.end(), out);
                     return flat;
                   },
                   nb::rv_policy::move, "Joint torques handed to Bullet in the last step(), flat [ticks * n] (row-major).");
}
