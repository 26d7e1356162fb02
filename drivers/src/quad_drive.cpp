#include "rt/quad_drive.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace rt {

namespace {

// R (row-major) of a unit quaternion w, x, y, z: body -> world.
void quat_to_rot(const double* q, double R[3][3]) {
  const double n = std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
  const double w = q[0] / n, x = q[1] / n, y = q[2] / n, z = q[3] / n;
  R[0][0] = 1 - 2 * (y * y + z * z); R[0][1] = 2 * (x * y - w * z);     R[0][2] = 2 * (x * z + w * y);
  R[1][0] = 2 * (x * y + w * z);     R[1][1] = 1 - 2 * (x * x + z * z); R[1][2] = 2 * (y * z - w * x);
  R[2][0] = 2 * (x * z - w * y);     R[2][1] = 2 * (y * z + w * x);     R[2][2] = 1 - 2 * (x * x + y * y);
}

// Gauss-Jordan inverse of a 4x4 matrix; throws if singular (a degenerate rotor layout).
void invert4(const double A[4][4], double out[4][4]) {
  double m[4][8];
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 8; ++j) m[i][j] = j < 4 ? A[i][j] : (j - 4 == i ? 1.0 : 0.0);
  for (int c = 0; c < 4; ++c) {
    int piv = c;
    for (int r = c + 1; r < 4; ++r)
      if (std::fabs(m[r][c]) > std::fabs(m[piv][c])) piv = r;
    if (std::fabs(m[piv][c]) < 1e-12) throw std::invalid_argument("QuadParams: rotor layout is not controllable");
    for (int j = 0; j < 8; ++j) std::swap(m[c][j], m[piv][j]);
    const double d = m[c][c];
    for (int j = 0; j < 8; ++j) m[c][j] /= d;
    for (int r = 0; r < 4; ++r) {
      if (r == c) continue;
      const double f = m[r][c];
      for (int j = 0; j < 8; ++j) m[r][j] -= f * m[c][j];
    }
  }
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) out[i][j] = m[i][j + 4];
}

bool finite(const double* v, int n) {
  for (int i = 0; i < n; ++i)
    if (!std::isfinite(v[i])) return false;
  return true;
}

}  // namespace

void QuadParams::validate() const {
  auto fail = [](const std::string& what) { throw std::invalid_argument("QuadParams: " + what); };
  if (!(mass > 0)) fail("mass must be > 0");
  for (double i : inertia)
    if (!(i > 0)) fail("inertia entries must be > 0");
  if (rotor_x.size() != 4 || rotor_y.size() != 4 || rotor_spin.size() != 4) fail("exactly 4 rotors are supported");
  for (double s : rotor_spin)
    if (s != 1.0 && s != -1.0) fail("rotor_spin entries must be +1 or -1");
  if (!(kf > 0) || !(km > 0) || !(max_rotor_speed > 0)) fail("kf, km and max_rotor_speed must be > 0");
  if (!(motor_tau_up > 0) || !(motor_tau_down > 0)) fail("motor time constants must be > 0");
  for (int i = 0; i < 3; ++i) {
    if (drag[i] < 0 || rate_kp[i] < 0 || rate_ki[i] < 0 || rate_kd[i] < 0 || rate_i_limit[i] < 0)
      fail("drag and rate gains must be >= 0");
    if (!(max_rate[i] > 0)) fail("max_rate entries must be > 0");
  }
}

QuadDrive::QuadDrive(QuadParams params, double physics_dt) : p_(std::move(params)), dt_(physics_dt) {
  p_.validate();
  if (!(physics_dt > 0)) throw std::invalid_argument("QuadDrive: physics_dt must be > 0");
  const double kappa = p_.km / p_.kf;
  double A[4][4];
  for (int i = 0; i < 4; ++i) {
    A[0][i] = 1.0;
    A[1][i] = p_.rotor_y[i];                 // roll torque of an upward force at (x, y)
    A[2][i] = -p_.rotor_x[i];                // pitch torque
    A[3][i] = -p_.rotor_spin[i] * kappa;     // reaction torque of a CCW rotor is clockwise (-z)
  }
  invert4(A, alloc_inv_);
  for (int i = 0; i < 4; ++i) {
    thrust_share_[i] = alloc_inv_[i][0];
    if (!(thrust_share_[i] > 0)) throw std::invalid_argument("QuadParams: CoM lies outside the rotor polygon");
  }
  f_max_ = p_.kf * p_.max_rotor_speed * p_.max_rotor_speed;
  reset(0.0);
}

void QuadDrive::reset(double rotor_speed) {
  const double w = std::clamp(rotor_speed, 0.0, p_.max_rotor_speed);
  const double u = (w / p_.max_rotor_speed) * (w / p_.max_rotor_speed);
  w_.fill(w);
  u_.fill(u);
  ctbr_ = {u, 0.0, 0.0, 0.0};
  integ_.fill(0.0);
  prev_omega_.fill(0.0);
  have_prev_ = false;
  open_loop_ = false;
}

bool QuadDrive::set_ctbr(const double* cmd) {
  if (!finite(cmd, 4)) return false;
  ctbr_[0] = std::clamp(cmd[0], 0.0, 1.0);
  for (int i = 0; i < 3; ++i) ctbr_[i + 1] = std::clamp(cmd[i + 1], -p_.max_rate[i], p_.max_rate[i]);
  open_loop_ = false;
  return true;
}

bool QuadDrive::set_motors(const double* u) {
  if (!finite(u, 4)) return false;
  for (int i = 0; i < 4; ++i) u_[i] = std::clamp(u[i], 0.0, 1.0);
  open_loop_ = true;
  return true;
}

void QuadDrive::set_wind(const double* wind) {
  if (!finite(wind, 3)) throw std::invalid_argument("QuadDrive: wind must be finite");
  for (int i = 0; i < 3; ++i) wind_[i] = wind[i];
}

double QuadDrive::hover_thrust() const { return p_.mass * 9.81 / max_collective_thrust(); }

// Rotor thrusts for collective `thrust` (N) and body torques, within [0, f_max]. Roll/pitch win over
// collective thrust, yaw gives way first: losing yaw authority briefly is benign, losing attitude is not.
void QuadDrive::mix(double thrust, const double* torque) {
  double f_rp[4], f_yaw[4];
  double t_lo = -1e300, t_hi = 1e300;
  for (int i = 0; i < 4; ++i) {
    f_rp[i] = alloc_inv_[i][1] * torque[0] + alloc_inv_[i][2] * torque[1];
    f_yaw[i] = alloc_inv_[i][3] * torque[2];
  }
  const double lo = *std::min_element(f_rp, f_rp + 4), hi = *std::max_element(f_rp, f_rp + 4);
  const double scale = hi - lo > f_max_ ? f_max_ / (hi - lo) : 1.0;
  // Collective range that keeps every rotor in [0, f_max] given the (scaled) roll/pitch part.
  for (int i = 0; i < 4; ++i) {
    t_lo = std::max(t_lo, -scale * f_rp[i] / thrust_share_[i]);
    t_hi = std::min(t_hi, (f_max_ - scale * f_rp[i]) / thrust_share_[i]);
  }
  if (t_lo <= t_hi) thrust = std::clamp(thrust, t_lo, t_hi);
  double f[4];
  for (int i = 0; i < 4; ++i) f[i] = thrust_share_[i] * thrust + scale * f_rp[i];
  double yaw_scale = 1.0;
  for (int i = 0; i < 4; ++i) {
    if (f_yaw[i] > 0 && f[i] + f_yaw[i] > f_max_) yaw_scale = std::min(yaw_scale, (f_max_ - f[i]) / f_yaw[i]);
    if (f_yaw[i] < 0 && f[i] + f_yaw[i] < 0) yaw_scale = std::min(yaw_scale, -f[i] / f_yaw[i]);
  }
  yaw_scale = std::max(yaw_scale, 0.0);
  for (int i = 0; i < 4; ++i) u_[i] = std::clamp((f[i] + yaw_scale * f_yaw[i]) / f_max_, 0.0, 1.0);
}

void QuadDrive::compute(const double* quat, const double* vel, const double* omega, double* wrench) {
  if (!armed_) {
    u_.fill(0.0);
    integ_.fill(0.0);
  } else if (!open_loop_) {
    // Rate PID in angular-acceleration units, derivative on measurement (no kick on setpoint steps),
    // integrator frozen near zero thrust so it cannot wind up on the ground.
    double alpha[3];
    for (int i = 0; i < 3; ++i) {
      const double err = ctbr_[i + 1] - omega[i];
      const double d = have_prev_ ? (omega[i] - prev_omega_[i]) / dt_ : 0.0;
      if (ctbr_[0] > 0.05)
        integ_[i] = std::clamp(integ_[i] + p_.rate_ki[i] * err * dt_, -p_.rate_i_limit[i], p_.rate_i_limit[i]);
      alpha[i] = p_.rate_kp[i] * err + integ_[i] - p_.rate_kd[i] * d;
    }
    const auto& J = p_.inertia;
    // tau = J alpha + omega x (J omega): cancels the gyroscopic coupling of the rigid body.
    const double torque[3] = {
        J[0] * alpha[0] + omega[1] * J[2] * omega[2] - omega[2] * J[1] * omega[1],
        J[1] * alpha[1] + omega[2] * J[0] * omega[0] - omega[0] * J[2] * omega[2],
        J[2] * alpha[2] + omega[0] * J[1] * omega[1] - omega[1] * J[0] * omega[0],
    };
    mix(ctbr_[0] * max_collective_thrust(), torque);
  }
  for (int i = 0; i < 3; ++i) prev_omega_[i] = omega[i];
  have_prev_ = true;

  // First-order rotor-speed response to the commanded speed (exact discretization).
  double thrust = 0.0, tx = 0.0, ty = 0.0, tz = 0.0, wsum = 0.0;
  for (int i = 0; i < 4; ++i) {
    const double wc = p_.max_rotor_speed * std::sqrt(u_[i]);
    const double tau = wc > w_[i] ? p_.motor_tau_up : p_.motor_tau_down;
    w_[i] = wc + (w_[i] - wc) * std::exp(-dt_ / tau);
    const double f = p_.kf * w_[i] * w_[i];
    thrust += f;
    tx += p_.rotor_y[i] * f;
    ty += -p_.rotor_x[i] * f;
    tz += -p_.rotor_spin[i] * p_.km * w_[i] * w_[i];
    wsum += w_[i];
  }
  double R[3][3];
  quat_to_rot(quat, R);
  double v_air_b[3];  // R^T (v - wind)
  for (int i = 0; i < 3; ++i) {
    v_air_b[i] = 0.0;
    for (int j = 0; j < 3; ++j) v_air_b[i] += R[j][i] * (vel[j] - wind_[j]);
  }
  const double fb[3] = {-p_.drag[0] * wsum * v_air_b[0], -p_.drag[1] * wsum * v_air_b[1],
                        thrust - p_.drag[2] * wsum * v_air_b[2]};
  const double tb[3] = {tx, ty, tz};
  for (int i = 0; i < 3; ++i) {
    wrench[i] = R[i][0] * fb[0] + R[i][1] * fb[1] + R[i][2] * fb[2];
    wrench[3 + i] = R[i][0] * tb[0] + R[i][1] * tb[1] + R[i][2] * tb[2];
  }
}

}  // namespace rt
