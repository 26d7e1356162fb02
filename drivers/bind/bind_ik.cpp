// Python bindings for the compiled arm IK (robotlearn/robots/arm_kinematics.py builds it).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/vector.h>

#include <optional>
#include <stdexcept>
#include <string>

#include "bind_util.hpp"
#include "rt/arm_ik.hpp"

namespace nb = nanobind;
using namespace nb::literals;
using bind_util::Vec;
using bind_util::checked;
using bind_util::OutVec;
using bind_util::new_vec;


void bind_ik(nb::module_& m) {
  nb::class_<rt::MujocoArmIK>(m, "MujocoArmIK",
                              "FK and damped-least-squares IK of an arm on libmujoco's kinematics, in C++.")
      .def("__init__",
           [](rt::MujocoArmIK* self, std::uintptr_t kinematics, std::uintptr_t com_pos, std::uintptr_t jac_body,
              std::uintptr_t sub_quat, std::uintptr_t model, std::uintptr_t data, std::uintptr_t qpos,
              std::uintptr_t xpos, std::uintptr_t xquat, std::uintptr_t xmat, int nv, std::vector<int> qpos_index,
              std::vector<int> dof_index, std::vector<double> lower, std::vector<double> upper, int ee_body) {
             new (self) rt::MujocoArmIK({kinematics, com_pos, jac_body, sub_quat}, model, data, qpos, xpos, xquat,
                                        xmat, nv, std::move(qpos_index), std::move(dof_index), std::move(lower),
                                        std::move(upper), ee_body);
           },
           "mj_kinematics"_a, "mj_comPos"_a, "mj_jacBody"_a, "mju_subQuat"_a, "model"_a, "data"_a, "qpos"_a,
           "xpos"_a, "xquat"_a, "xmat"_a, "nv"_a, "qpos_index"_a, "dof_index"_a, "lower"_a, "upper"_a,
           "ee_body"_a, "Addresses of libmujoco functions, of an mjModel/mjData and of that mjData's arrays.")
      .def("forward",
           [](rt::MujocoArmIK& ik, Vec q) {
             double *pos, *quat;
             OutVec p = new_vec(3, &pos), r = new_vec(4, &quat);
             ik.forward(checked(q, ik.size(), "q"), pos, quat);
             return std::make_pair(p, r);
           },
           "q"_a, "(ee_pos (3,), ee_quat wxyz (4,)) for arm joint angles q.")
      .def("inverse",
           [](rt::MujocoArmIK& ik, Vec pos, std::optional<Vec> quat, Vec seed, int iterations, double tol,
              double damping, double rot_weight) {
             rt::IkOptions opt{iterations, tol, damping, rot_weight};
             double* out;
             OutVec q = new_vec(ik.size(), &out);
             ik.inverse(checked(pos, 3, "pos"), quat ? checked(*quat, 4, "quat") : nullptr,
                        checked(seed, ik.size(), "seed"), opt, out);
             return q;
           },
           "pos"_a, "quat"_a.none(), "seed"_a, "iterations"_a = 25, "tol"_a = 2e-4, "damping"_a = 1e-3,
           "rot_weight"_a = 0.3, "Joint angles reaching pos (and quat wxyz unless None) from seed, within limits.")
      .def_prop_ro("size", &rt::MujocoArmIK::size);
}
