#include "rt/arm_ik.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace rt {
namespace {

constexpr int kMaxErr = 6;

// Solves A x = b for a symmetric positive-definite m x m A (m <= 6) by Cholesky; A is overwritten.
// J J^T + lambda I is SPD for lambda > 0, so no pivoting is needed.
void solve_spd(double* a, double* b, int m) {
  for (int j = 0; j < m; ++j) {
    double d = a[j * m + j];
    for (int k = 0; k < j; ++k) d -= a[j * m + k] * a[j * m + k];
    if (!(d > 0)) throw std::runtime_error("MujocoArmIK: damped normal matrix is not positive definite");
    d = std::sqrt(d);
    a[j * m + j] = d;
    for (int i = j + 1; i < m; ++i) {
      double s = a[i * m + j];
      for (int k = 0; k < j; ++k) s -= a[i * m + k] * a[j * m + k];
      a[i * m + j] = s / d;
    }
  }
  for (int i = 0; i < m; ++i) {  // L y = b
    double s = b[i];
    for (int k = 0; k < i; ++k) s -= a[i * m + k] * b[k];
    b[i] = s / a[i * m + i];
  }
  for (int i = m - 1; i >= 0; --i) {  // L^T x = y
    double s = b[i];
    for (int k = i + 1; k < m; ++k) s -= a[k * m + i] * b[k];
    b[i] = s / a[i * m + i];
  }
}

}  // namespace

MujocoArmIK::MujocoArmIK(MujocoKinematicsApi api, std::uintptr_t model, std::uintptr_t data, std::uintptr_t qpos,
                         std::uintptr_t xpos, std::uintptr_t xquat, std::uintptr_t xmat, int nv,
                         std::vector<int> qpos_index, std::vector<int> dof_index, std::vector<double> lower,
                         std::vector<double> upper, int ee_body)
    : kinematics_(reinterpret_cast<KinFn>(api.kinematics)),
      com_pos_(reinterpret_cast<KinFn>(api.com_pos)),
      jac_body_(reinterpret_cast<JacFn>(api.jac_body)),
      sub_quat_(reinterpret_cast<SubQuatFn>(api.sub_quat)),
      model_(reinterpret_cast<const void*>(model)),
      data_(reinterpret_cast<void*>(data)),
      qpos_(reinterpret_cast<double*>(qpos)),
      xpos_(reinterpret_cast<const double*>(xpos)),
      xquat_(reinterpret_cast<const double*>(xquat)),
      xmat_(reinterpret_cast<const double*>(xmat)),
      nv_(nv),
      ee_(ee_body),
      qpos_index_(std::move(qpos_index)),
      dof_index_(std::move(dof_index)),
      lower_(std::move(lower)),
      upper_(std::move(upper)) {
  if (!api.kinematics || !api.com_pos || !api.jac_body || !api.sub_quat || !model || !data || !qpos || !xpos ||
      !xquat || !xmat)
    throw std::invalid_argument("MujocoArmIK: null address");
  const std::size_t n = qpos_index_.size();
  if (n == 0 || dof_index_.size() != n || lower_.size() != n || upper_.size() != n)
    throw std::invalid_argument("MujocoArmIK: qpos_index, dof_index, lower and upper must have one entry per joint");
  for (int i : dof_index_)
    if (i < 0 || i >= nv_) throw std::invalid_argument("MujocoArmIK: dof index out of range");
  if (ee_body < 0) throw std::invalid_argument("MujocoArmIK: ee_body must be a body id");
  jacp_.resize(3 * static_cast<std::size_t>(nv_));
  jacr_.resize(3 * static_cast<std::size_t>(nv_));
  jac_.resize(kMaxErr * n);
  q_.resize(n);
}

void MujocoArmIK::forward(const double* q, double* pos, double* quat) {
  for (std::size_t i = 0; i < q_.size(); ++i) qpos_[qpos_index_[i]] = q[i];
  kinematics_(model_, data_);
  com_pos_(model_, data_);  // the Jacobians need cdof
  if (pos) std::copy(xpos_ + 3 * ee_, xpos_ + 3 * ee_ + 3, pos);
  if (quat) std::copy(xquat_ + 4 * ee_, xquat_ + 4 * ee_ + 4, quat);
}

int MujocoArmIK::inverse(const double* pos, const double* quat, const double* seed, const IkOptions& opt,
                         double* q_out) {
  const std::size_t n = q_.size();
  const int m = quat ? 6 : 3;
  for (std::size_t i = 0; i < n; ++i) q_[i] = std::clamp(seed[i], lower_[i], upper_[i]);
  double err[kMaxErr], rhs[kMaxErr], normal[kMaxErr * kMaxErr], cur_pos[3], cur_quat[4], err_rot[3];
  double previous = std::numeric_limits<double>::infinity();
  int updates = 0;
  for (int it = 0; it < opt.iterations; ++it) {
    forward(q_.data(), cur_pos, cur_quat);
    for (int r = 0; r < 3; ++r) err[r] = pos[r] - cur_pos[r];
    if (quat) {
      // mju_subQuat gives the rotation in the current body frame; the Jacobian is in the world frame.
      sub_quat_(err_rot, quat, cur_quat);
      const double* rot = xmat_ + 9 * ee_;
      for (int r = 0; r < 3; ++r)
        err[3 + r] = opt.rot_weight * (rot[3 * r] * err_rot[0] + rot[3 * r + 1] * err_rot[1] + rot[3 * r + 2] * err_rot[2]);
    }
    double size = 0.0;
    for (int r = 0; r < m; ++r) size += err[r] * err[r];
    size = std::sqrt(size);
    if (size < opt.tol || size > 0.99 * previous) break;  // converged, or no longer shrinking (unreachable)
    previous = size;
    jac_body_(model_, data_, jacp_.data(), jacr_.data(), ee_);
    for (int r = 0; r < 3; ++r)
      for (std::size_t c = 0; c < n; ++c) {
        jac_[r * n + c] = jacp_[r * nv_ + dof_index_[c]];
        if (quat) jac_[(3 + r) * n + c] = opt.rot_weight * jacr_[r * nv_ + dof_index_[c]];
      }
    for (int r = 0; r < m; ++r) {
      for (int c = 0; c <= r; ++c) {
        double s = 0.0;
        for (std::size_t k = 0; k < n; ++k) s += jac_[r * n + k] * jac_[c * n + k];
        normal[r * m + c] = normal[c * m + r] = s;
      }
      normal[r * m + r] += opt.damping;
      rhs[r] = err[r];
    }
    solve_spd(normal, rhs, m);
    for (std::size_t c = 0; c < n; ++c) {
      double dq = 0.0;
      for (int r = 0; r < m; ++r) dq += jac_[r * n + c] * rhs[r];
      q_[c] = std::clamp(q_[c] + dq, lower_[c], upper_[c]);
    }
    ++updates;
  }
  std::copy(q_.begin(), q_.end(), q_out);
  return updates;
}

}  // namespace rt
