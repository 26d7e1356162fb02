#include "rt/pybullet_drive.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace rt {
namespace {

template <typename F>
F as_fn(std::uintptr_t address, const char* name) {
  if (!address) throw std::invalid_argument(std::string("PybulletStepper: no address for ") + name);
  return reinterpret_cast<F>(address);
}

// In-place LU factorization with partial pivoting of an n x n row-major matrix (as LAPACK's getrf).
void lu_factor(double* a, int* pivot, std::size_t n) {
  for (std::size_t k = 0; k < n; ++k) {
    std::size_t p = k;
    for (std::size_t i = k + 1; i < n; ++i)
      if (std::abs(a[i * n + k]) > std::abs(a[p * n + k])) p = i;
    if (a[p * n + k] == 0.0) throw std::runtime_error("PybulletStepper: singular M + A");
    pivot[k] = static_cast<int>(p);
    if (p != k)
      for (std::size_t j = 0; j < n; ++j) std::swap(a[k * n + j], a[p * n + j]);
    for (std::size_t i = k + 1; i < n; ++i) {
      a[i * n + k] /= a[k * n + k];
      for (std::size_t j = k + 1; j < n; ++j) a[i * n + j] -= a[i * n + k] * a[k * n + j];
    }
  }
}

// Solves (LU) x = b in place for one right-hand side b (length n).
void lu_solve(const double* lu, const int* pivot, double* b, std::size_t n) {
  for (std::size_t k = 0; k < n; ++k)
    if (static_cast<std::size_t>(pivot[k]) != k) std::swap(b[k], b[pivot[k]]);
  for (std::size_t i = 1; i < n; ++i)
    for (std::size_t k = 0; k < i; ++k) b[i] -= lu[i * n + k] * b[k];
  for (std::size_t i = n; i-- > 0;) {
    for (std::size_t k = i + 1; k < n; ++k) b[i] -= lu[i * n + k] * b[k];
    b[i] /= lu[i * n + i];
  }
}

}  // namespace

PybulletStepper::PybulletStepper(PybulletApi api, std::uintptr_t client, int body, std::vector<int> q_index,
                                 std::vector<int> u_index, std::vector<double> damping, std::vector<double> armature,
                                 double dt, int mass_refresh_ticks, int torque_mode)
    : can_submit_(as_fn<decltype(can_submit_)>(api.can_submit, "b3CanSubmitCommand")),
      submit_(as_fn<decltype(submit_)>(api.submit, "b3SubmitClientCommandAndWaitStatus")),
      init_step_(as_fn<decltype(init_step_)>(api.init_step, "b3InitStepSimulationCommand")),
      request_state_(as_fn<decltype(request_state_)>(api.request_state, "b3RequestActualStateCommandInit")),
      status_state_(as_fn<decltype(status_state_)>(api.status_state, "b3GetStatusActualState")),
      joint_control_init_(as_fn<decltype(joint_control_init_)>(api.joint_control_init, "b3JointControlCommandInit2")),
      set_force_torque_(as_fn<decltype(set_force_torque_)>(api.set_force_torque, "b3JointControlSetDesiredForceTorque")),
      mass_matrix_init_(as_fn<decltype(mass_matrix_init_)>(api.mass_matrix_init, "b3CalculateMassMatrixCommandInit")),
      mass_matrix_flags_(as_fn<decltype(mass_matrix_flags_)>(api.mass_matrix_flags, "b3CalculateMassMatrixSetFlags")),
      status_mass_matrix_(as_fn<decltype(status_mass_matrix_)>(api.status_mass_matrix, "b3GetStatusMassMatrix")),
      inverse_dynamics_init_(
          as_fn<decltype(inverse_dynamics_init_)>(api.inverse_dynamics_init, "b3CalculateInverseDynamicsCommandInit2")),
      inverse_dynamics_flags_(
          as_fn<decltype(inverse_dynamics_flags_)>(api.inverse_dynamics_flags, "b3CalculateInverseDynamicsSetFlags")),
      status_inverse_dynamics_(as_fn<decltype(status_inverse_dynamics_)>(api.status_inverse_dynamics,
                                                                        "b3GetStatusInverseDynamicsJointForces")),
      client_(reinterpret_cast<Handle>(client)),
      body_(body),
      n_(q_index.size()),
      q_index_(std::move(q_index)),
      u_index_(std::move(u_index)),
      damping_(std::move(damping)),
      armature_(std::move(armature)),
      dt_(dt),
      refresh_ticks_(mass_refresh_ticks),
      torque_mode_(torque_mode) {
  if (!client_ || !can_submit_(client_)) throw std::invalid_argument("PybulletStepper: not a connected physics client");
  if (n_ == 0 || u_index_.size() != n_ || damping_.size() != n_ || armature_.size() != n_)
    throw std::invalid_argument("PybulletStepper: q_index, u_index, damping and armature need one entry per joint");
  if (!(dt_ > 0) || refresh_ticks_ < 1) throw std::invalid_argument("PybulletStepper: dt > 0 and mass_refresh_ticks >= 1");
  gain_.assign(n_ * n_, 0.0);
  correction_.assign(n_ * 3 * n_, 0.0);
  stacked_.assign(3 * n_, 0.0);
  mass_.assign(n_ * n_, 0.0);
  lu_.assign(n_ * n_, 0.0);
  pivot_.assign(n_, 0);
  for (auto* v : {&q_, &qd_, &tau_, &servo_tau_, &applied_, &bias_, &zeros_}) v->assign(n_, 0.0);
}

void PybulletStepper::reset(int body) {
  body_ = body;
  first_tick_ = true;
  tick_in_refresh_ = 0;
  std::fill(gain_.begin(), gain_.end(), 0.0);
  std::fill(correction_.begin(), correction_.end(), 0.0);
  std::fill(stacked_.begin(), stacked_.end(), 0.0);
}

void* PybulletStepper::submit(void* command, const char* what) {
  Handle status = submit_(client_, command);
  if (!status) throw std::runtime_error(std::string("PybulletStepper: ") + what + " got no reply from the physics server");
  return status;
}

void PybulletStepper::request_state(double* q, double* qd) {
  if (!can_submit_(client_)) throw std::runtime_error("PybulletStepper: physics client disconnected");
  Handle status = submit(request_state_(client_, body_), "joint state request");
  const double *state_q = nullptr, *state_qd = nullptr;
  if (!status_state_(status, nullptr, nullptr, nullptr, nullptr, &state_q, &state_qd, nullptr) || !state_q || !state_qd)
    throw std::runtime_error("PybulletStepper: joint state request failed");
  for (std::size_t i = 0; i < n_; ++i) {
    q[i] = state_q[q_index_[i]];
    qd[i] = state_qd[u_index_[i]];
  }
}

void PybulletStepper::read(double* q, double* qd) { request_state(q, qd); }

void PybulletStepper::refresh_mass(const double* q) {
  Handle cmd = mass_matrix_init_(client_, body_, q, static_cast<int>(n_));
  mass_matrix_flags_(cmd, 0);
  Handle status = submit(cmd, "mass matrix");
  int dofs = 0;
  if (!status_mass_matrix_(client_, status, &dofs, nullptr) || dofs != static_cast<int>(n_))
    throw std::runtime_error("PybulletStepper: calculateMassMatrix failed or has the wrong size");
  status_mass_matrix_(client_, status, nullptr, mass_.data());
  // X = (M + A)^-1 A column by column (A diagonal); G = X^T.
  lu_ = mass_;
  for (std::size_t i = 0; i < n_; ++i) lu_[i * n_ + i] += armature_[i];
  lu_factor(lu_.data(), pivot_.data(), n_);
  std::vector<double>& col = bias_;  // scratch; bias_ is only needed on the first tick, after this
  for (std::size_t j = 0; j < n_; ++j) {
    std::fill(col.begin(), col.end(), 0.0);
    col[j] = armature_[j];
    lu_solve(lu_.data(), pivot_.data(), col.data(), n_);
    for (std::size_t i = 0; i < n_; ++i) gain_[j * n_ + i] = col[i];  // G[j][i] = X[i][j]
  }
  const std::size_t w = 3 * n_;
  for (std::size_t r = 0; r < n_; ++r)
    for (std::size_t c = 0; c < n_; ++c) {
      const double g = gain_[r * n_ + c];
      correction_[r * w + c] = (r == c ? 1.0 : 0.0) - g;
      correction_[r * w + n_ + c] = g;
      double gm = 0.0;
      for (std::size_t k = 0; k < n_; ++k) gm += gain_[r * n_ + k] * mass_[k * n_ + c];
      correction_[r * w + 2 * n_ + c] = gm / dt_;
    }
}

void PybulletStepper::step(JointDrive& drive, int ticks) {
  if (drive.size() != n_) throw std::invalid_argument("PybulletStepper: drive size mismatch");
  const std::size_t n = n_, w = 3 * n_;
  applied_log_.resize(static_cast<std::size_t>(std::max(ticks, 0)) * n);
  for (int k = 0; k < ticks; ++k) {
    request_state(q_.data(), qd_.data());
    drive.compute(q_.data(), qd_.data(), tau_.data());
    std::copy(tau_.begin(), tau_.end(), servo_tau_.begin());
    for (std::size_t i = 0; i < n; ++i) tau_[i] -= damping_[i] * qd_[i];
    if (tick_in_refresh_ == 0) refresh_mass(q_.data());
    tick_in_refresh_ = (tick_in_refresh_ + 1) % refresh_ticks_;
    if (first_tick_) {
      Handle cmd = inverse_dynamics_init_(client_, body_, q_.data(), static_cast<int>(n), qd_.data(), zeros_.data(),
                                          static_cast<int>(n));
      inverse_dynamics_flags_(cmd, 0);
      Handle status = submit(cmd, "inverse dynamics");
      int dofs = 0;
      if (!status_inverse_dynamics_(status, nullptr, &dofs, nullptr) || dofs != static_cast<int>(n))
        throw std::runtime_error("PybulletStepper: calculateInverseDynamics failed or has the wrong size");
      status_inverse_dynamics_(status, nullptr, nullptr, bias_.data());
      for (std::size_t r = 0; r < n; ++r) {
        double s = 0.0;
        for (std::size_t c = 0; c < n; ++c) s += gain_[r * n + c] * (tau_[c] - bias_[c]);
        applied_[r] = tau_[r] - s;
      }
      first_tick_ = false;
    } else {
      for (std::size_t i = 0; i < n; ++i) {
        stacked_[i] = tau_[i];
        stacked_[2 * n + i] -= qd_[i];
      }
      for (std::size_t r = 0; r < n; ++r) {
        double s = 0.0;
        for (std::size_t c = 0; c < w; ++c) s += correction_[r * w + c] * stacked_[c];
        applied_[r] = s;
      }
    }
    Handle cmd = joint_control_init_(client_, body_, torque_mode_);
    for (std::size_t i = 0; i < n; ++i) set_force_torque_(cmd, u_index_[i], applied_[i]);
    submit(cmd, "joint torques");
    submit(init_step_(client_), "stepSimulation");
    std::copy(applied_.begin(), applied_.end(), applied_log_.begin() + static_cast<std::ptrdiff_t>(k * n));
    for (std::size_t i = 0; i < n; ++i) {
      stacked_[n + i] = applied_[i];
      stacked_[2 * n + i] = qd_[i];
    }
  }
}

}  // namespace rt
