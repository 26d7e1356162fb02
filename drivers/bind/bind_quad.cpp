#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/array.h>
#include <nanobind/stl/vector.h>

#include <stdexcept>
#include <string>

#include "rt/quad_drive.hpp"

namespace nb = nanobind;
using In = nb::ndarray<const double, nb::ndim<1>, nb::device::cpu>;
using Out = nb::ndarray<double, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

namespace {

// Strided views are fine for inputs (e.g. slices of mjData.qvel); copy into a small local buffer.
template <std::size_t N>
std::array<double, N> vec(const In& v, const char* what) {
  if (v.shape(0) != N) throw std::invalid_argument(std::string(what) + ": expected length " + std::to_string(N));
  std::array<double, N> out{};
  for (std::size_t i = 0; i < N; ++i) out[i] = v(i);
  return out;
}

template <std::size_t N>
nb::ndarray<nb::numpy, double, nb::ndim<1>> to_numpy(const std::array<double, N>& a) {
  auto* buf = new double[N];
  std::copy(a.begin(), a.end(), buf);
  nb::capsule owner(buf, [](void* p) noexcept { delete[] static_cast<double*>(p); });
  return nb::ndarray<nb::numpy, double, nb::ndim<1>>(buf, {N}, owner);
}

}  // namespace

void bind_quad(nb::module_& m) {
  nb::class_<rt::QuadParams>(m, "QuadParams", "Airframe, motor and rate-loop constants (SI, body FLU).")
      .def(nb::init<>())
      .def_rw("mass", &rt::QuadParams::mass)
      .def_rw("inertia", &rt::QuadParams::inertia)
      .def_rw("rotor_x", &rt::QuadParams::rotor_x)
      .def_rw("rotor_y", &rt::QuadParams::rotor_y)
      .def_rw("rotor_spin", &rt::QuadParams::rotor_spin)
      .def_rw("kf", &rt::QuadParams::kf)
      .def_rw("km", &rt::QuadParams::km)
      .def_rw("max_rotor_speed", &rt::QuadParams::max_rotor_speed)
      .def_rw("motor_tau_up", &rt::QuadParams::motor_tau_up)
      .def_rw("motor_tau_down", &rt::QuadParams::motor_tau_down)
      .def_rw("drag", &rt::QuadParams::drag)
      .def_rw("rate_kp", &rt::QuadParams::rate_kp)
      .def_rw("rate_ki", &rt::QuadParams::rate_ki)
      .def_rw("rate_kd", &rt::QuadParams::rate_kd)
      .def_rw("rate_i_limit", &rt::QuadParams::rate_i_limit)
      .def_rw("max_rate", &rt::QuadParams::max_rate)
      .def("validate", &rt::QuadParams::validate);

  nb::class_<rt::QuadDrive>(m, "QuadDrive",
                            "Body-rate PID + mixer + motor model; compute() once per physics tick.")
      .def(nb::init<rt::QuadParams, double>(), nb::arg("params"), nb::arg("physics_dt"))
      .def("reset", &rt::QuadDrive::reset, nb::arg("rotor_speed"))
      .def("set_ctbr", [](rt::QuadDrive& d, In cmd) { auto c = vec<4>(cmd, "ctbr"); return d.set_ctbr(c.data()); },
           nb::arg("cmd"), "[thrust 0..1, p, q, r rad/s]; False (previous kept) if non-finite.")
      .def("set_motors", [](rt::QuadDrive& d, In u) { auto c = vec<4>(u, "motors"); return d.set_motors(c.data()); },
           nb::arg("u"), "Open-loop normalized motor commands 0..1; False (previous kept) if non-finite.")
      .def("set_armed", &rt::QuadDrive::set_armed, nb::arg("armed"))
      .def("set_wind", [](rt::QuadDrive& d, In w) { auto c = vec<3>(w, "wind"); d.set_wind(c.data()); },
           nb::arg("wind"))
      .def("compute",
           [](rt::QuadDrive& d, In quat, In vel, In omega, Out wrench) {
             if (wrench.shape(0) != 6) throw std::invalid_argument("wrench: expected length 6");
             auto q = vec<4>(quat, "quat");
             auto v = vec<3>(vel, "vel");
             auto w = vec<3>(omega, "omega");
             d.compute(q.data(), v.data(), w.data(), wrench.data());
           },
           nb::arg("quat"), nb::arg("vel"), nb::arg("omega"), nb::arg("wrench"),
           "Writes [force world (3), torque world (3)] about the CoM into `wrench`.")
      .def_prop_ro("hover_thrust", &rt::QuadDrive::hover_thrust)
      .def_prop_ro("max_collective_thrust", &rt::QuadDrive::max_collective_thrust)
      .def_prop_ro("rotor_speed", [](const rt::QuadDrive& d) { return to_numpy(d.rotor_speed()); }, nb::rv_policy::move)
      .def_prop_ro("motor_command", [](const rt::QuadDrive& d) { return to_numpy(d.motor_command()); }, nb::rv_policy::move)
      .def_prop_ro("dt", &rt::QuadDrive::dt);
}
