// Quadrotor low-level loop shared by both sims and the emulated vehicle: body-rate PID -> motor
// mixer -> first-order motor model -> per-rotor thrust/drag -> one body wrench per physics tick.
//
// Why in C++: it runs every physics tick (500 Hz+) in three places (MuJoCo, PyBullet, the MAVLink
// emulator); one compiled implementation means the engines integrate identical inputs and the
// emulator's "flight controller" cannot drift from the sims'. Frames: world ENU-like (z up), body
// FLU; quaternions are w, x, y, z.
#pragma once
#include <array>
#include <vector>

namespace rt {

struct QuadParams {
  double mass = 0.0;                         // kg (used only for the hover-thrust reporting)
  std::array<double, 3> inertia{};           // principal moments Ixx, Iyy, Izz, kg m^2
  std::vector<double> rotor_x, rotor_y;      // rotor positions in the body frame, m (4 rotors)
  std::vector<double> rotor_spin;            // +1: spins counter-clockwise seen from above, -1: clockwise
  double kf = 0.0;                           // thrust = kf * w^2, N/(rad/s)^2
  double km = 0.0;                           // rotor drag torque = km * w^2, N m/(rad/s)^2
  double max_rotor_speed = 0.0;              // rad/s at motor command 1
  double motor_tau_up = 0.05;                // s, first-order rotor-speed time constant (spin up)
  double motor_tau_down = 0.05;              // s, (spin down)
  std::array<double, 3> drag{};              // rotor drag, body frame: F = -drag * (sum w_i) * v_air_body
  std::array<double, 3> rate_kp{}, rate_ki{}, rate_kd{};  // angular-acceleration gains (1/s, 1/s^2, 1)
  std::array<double, 3> rate_i_limit{};      // |integral term| limit, rad/s^2
  std::array<double, 3> max_rate{};          // body-rate command limits, rad/s
  void validate() const;
};

class QuadDrive {
 public:
  QuadDrive(QuadParams params, double physics_dt);
  // Rotors at `rotor_speed` (rad/s, each), integrators and filters cleared.
  void reset(double rotor_speed);
  // CTBR: collective thrust in [0, 1] of max, body rates (FLU, rad/s). Returns false (keeping the
  // previous command) for non-finite input; values are clamped to their ranges.
  bool set_ctbr(const double* cmd);
  // Open-loop motor commands in [0, 1] (normalized thrust per rotor), bypassing the rate loop until
  // the next set_ctbr. Used for identification and for cross-engine comparison.
  bool set_motors(const double* u);
  void set_armed(bool armed) { armed_ = armed; }
  // Air velocity (world frame) for the drag model; the emulator's wind.
  void set_wind(const double* wind);
  // One physics tick: state in -> wrench out (force world [3], torque world [3], about the CoM).
  // vel is the world-frame CoM velocity, omega the body-frame (FLU) angular velocity.
  void compute(const double* quat, const double* vel, const double* omega, double* wrench);

  double hover_thrust() const;  // fraction of max collective thrust that holds `mass` at 1 g
  double max_collective_thrust() const { return 4.0 * p_.kf * p_.max_rotor_speed * p_.max_rotor_speed; }
  const std::array<double, 4>& rotor_speed() const { return w_; }
  const std::array<double, 4>& motor_command() const { return u_; }
  const QuadParams& params() const { return p_; }
  double dt() const { return dt_; }

 private:
  void mix(double thrust, const double* torque);

  QuadParams p_;
  double dt_;
  double alloc_inv_[4][4];  // rotor thrusts = alloc_inv * [T, tx, ty, tz]
  double thrust_share_[4];  // column 0: each rotor's share of the collective at zero torque
  double f_max_;
  std::array<double, 4> ctbr_{}, u_{}, w_{};
  std::array<double, 3> integ_{}, prev_omega_{}, wind_{};
  bool open_loop_ = false, armed_ = true, have_prev_ = false;
};

}  // namespace rt
