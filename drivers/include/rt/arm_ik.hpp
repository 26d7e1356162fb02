// End-effector forward kinematics and damped-least-squares IK of an arm, on MuJoCo's kinematic model.
//
// The ee_delta action mode solves IK every control step on every backend (sims and the real arm). In
// Python each iteration costs tens of microseconds of interpreter and small-array overhead around a few
// microseconds of MuJoCo work; here the whole solve runs against libmujoco's own functions (addresses
// taken from the library the `mujoco` package loaded, as MujocoStepper does with mj_step), on the same
// mjModel/mjData, so FK and Jacobians are MuJoCo's and the answer matches the Python formulation.
#pragma once
#include <cstdint>
#include <vector>

namespace rt {

struct MujocoKinematicsApi {
  std::uintptr_t kinematics = 0, com_pos = 0, jac_body = 0, sub_quat = 0;  // mj_kinematics, mj_comPos, mj_jacBody, mju_subQuat
};

struct IkOptions {
  int iterations = 25;
  double tol = 2e-4;        // stop when |err| (m, weighted rad) is below this
  double damping = 1e-3;    // DLS regularizer lambda^2
  double rot_weight = 0.3;  // m per rad: how orientation error trades against position error
};

class MujocoArmIK {
 public:
  // model/data: mjModel*/mjData*; qpos/xpos/xquat/xmat: that mjData's arrays; nv: model->nv.
  MujocoArmIK(MujocoKinematicsApi api, std::uintptr_t model, std::uintptr_t data, std::uintptr_t qpos,
              std::uintptr_t xpos, std::uintptr_t xquat, std::uintptr_t xmat, int nv, std::vector<int> qpos_index,
              std::vector<int> dof_index, std::vector<double> lower, std::vector<double> upper, int ee_body);
  std::size_t size() const { return qpos_index_.size(); }
  // Sets the arm joints, runs mj_kinematics + mj_comPos; ee position (3) and quaternion wxyz (4).
  void forward(const double* q, double* pos, double* quat);
  // Joint angles reaching pos (and quat wxyz unless null) from seed, within the joint limits. Returns
  // the number of Jacobian updates made.
  int inverse(const double* pos, const double* quat, const double* seed, const IkOptions& opt, double* q_out);

 private:
  using KinFn = void (*)(const void*, void*);
  using JacFn = void (*)(const void*, const void*, double*, double*, int);
  using SubQuatFn = void (*)(double*, const double*, const double*);
  KinFn kinematics_, com_pos_;
  JacFn jac_body_;
  SubQuatFn sub_quat_;
  const void* model_;
  void* data_;
  double* qpos_;
  const double *xpos_, *xquat_, *xmat_;
  int nv_, ee_;
  std::vector<int> qpos_index_, dof_index_;
  std::vector<double> lower_, upper_, jacp_, jacr_, jac_, q_;
};

}  // namespace rt
