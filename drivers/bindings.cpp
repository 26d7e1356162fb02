// robotlearn._rt: the compiled real-time core. Each component binds itself in bind/*.cpp.
#include <nanobind/nanobind.h>

namespace nb = nanobind;

void bind_control(nb::module_& m);
void bind_bus(nb::module_& m);
void bind_loop(nb::module_& m);
void bind_quad(nb::module_& m);
void bind_emulator(nb::module_& m);
void bind_ik(nb::module_& m);
void bind_pybullet(nb::module_& m);

NB_MODULE(_rt, m) {
  m.doc() = "robotlearn compiled core: controllers, real-time loop, serial servo bus";
  bind_control(m);
  bind_bus(m);
  bind_loop(m);
  bind_quad(m);
  bind_emulator(m);
  bind_ik(m);
  bind_pybullet(m);
}
