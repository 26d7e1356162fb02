// Runs the shared joint drive once per physics tick against PyBullet's own C API.
//
// PyBullet has no per-tick hook, and a Python round trip per 2 ms physics tick (read joint states ->
// drive -> torques -> stepSimulation, several small Python<->C conversions) cost more than Bullet's
// step itself. This class makes the same physics-client calls the pybullet module makes for
// getJointStates / calculateMassMatrix / calculateInverseDynamics / setJointMotorControlArray
// (TORQUE_CONTROL) / stepSimulation, through the b3* functions the loaded pybullet extension exports,
// on the client handle that module holds for the connection: the simulation sees the same commands.
//
// It also carries the armature correction (Bullet has no reflected rotor inertia): with G = A (M+A)^-1,
// the torque applied is tau - G (tau - c + f), f being last tick's generalized constraint force; see
// robotlearn/sim/pybullet_arm.py.
#pragma once
#include <cstdint>
#include <vector>

#include "rt/sim_drive.hpp"

namespace rt {

// Addresses of b3* functions in the loaded pybullet extension.
struct PybulletApi {
  std::uintptr_t can_submit = 0, submit = 0, init_step = 0, request_state = 0, status_state = 0,
                 joint_control_init = 0, set_force_torque = 0, mass_matrix_init = 0, mass_matrix_flags = 0,
                 status_mass_matrix = 0, inverse_dynamics_init = 0, inverse_dynamics_flags = 0,
                 status_inverse_dynamics = 0;
};

class PybulletStepper {
 public:
  // client: pybullet's b3PhysicsClientHandle for the connection. q_index / u_index: each drive joint's
  // position / velocity index in Bullet's state vectors (getJointInfo [3] / [4]); all movable joints,
  // in dof order. torque_mode: pybullet.TORQUE_CONTROL.
  PybulletStepper(PybulletApi api, std::uintptr_t client, int body, std::vector<int> q_index,
                  std::vector<int> u_index, std::vector<double> damping, std::vector<double> armature,
                  double dt, int mass_refresh_ticks, int torque_mode);
  // After a world rebuild / state reset: the body id, and the correction starts over.
  void reset(int body);
  void step(JointDrive& drive, int ticks);
  // Joint positions and velocities as Bullet reports them now.
  void read(double* q, double* qd);
  std::size_t size() const { return n_; }
  // Joint torques handed to Bullet in the last step() call, row-major [ticks, n]: replaying them open
  // loop from the same state reproduces the motion (what bench/env_overhead.py times as the raw engine).
  const std::vector<double>& applied_torques() const { return applied_log_; }
  // The servo torque of the last tick (before the emulated damping and armature terms): what a
  // servo's present current measures.
  const std::vector<double>& servo_torque() const { return servo_tau_; }

 private:
  void request_state(double* q, double* qd);
  void refresh_mass(const double* q);
  void* submit(void* command, const char* what);

  using Handle = void*;
  int (*can_submit_)(Handle);
  Handle (*submit_)(Handle, Handle);
  Handle (*init_step_)(Handle);
  Handle (*request_state_)(Handle, int);
  int (*status_state_)(Handle, int*, int*, int*, const double**, const double**, const double**, const double**);
  Handle (*joint_control_init_)(Handle, int, int);
  int (*set_force_torque_)(Handle, int, double);
  Handle (*mass_matrix_init_)(Handle, int, const double*, int);
  void (*mass_matrix_flags_)(Handle, int);
  int (*status_mass_matrix_)(Handle, Handle, int*, double*);
  Handle (*inverse_dynamics_init_)(Handle, int, const double*, int, const double*, const double*, int);
  void (*inverse_dynamics_flags_)(Handle, int);
  int (*status_inverse_dynamics_)(Handle, int*, int*, double*);

  Handle client_;
  int body_;
  std::size_t n_;
  std::vector<int> q_index_, u_index_;
  std::vector<double> damping_, armature_;
  double dt_;
  int refresh_ticks_, torque_mode_;
  bool first_tick_ = true;
  int tick_in_refresh_ = 0;
  // gain_ = G (n x n); correction_ = [I - G, G, G M / dt] (n x 3n); stacked_ = [tau, applied_prev, qd_prev - qd]
  std::vector<double> applied_log_, gain_, correction_, stacked_, mass_, lu_, q_, qd_, tau_, servo_tau_, applied_, bias_,
      zeros_;
  std::vector<int> pivot_;
};

}  // namespace rt
