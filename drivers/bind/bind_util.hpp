// Helpers every binding file shares: checked 1-D input arrays, fresh NumPy output arrays, servo tables.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "rt/servo_bus.hpp"

namespace bind_util {

namespace nb = nanobind;
using Vec = nb::ndarray<const double, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using OutVec = nb::ndarray<nb::numpy, double, nb::ndim<1>>;

// The data of a 1-D float64 input of length n, or a one-line error naming the argument.
inline const double* checked(const Vec& v, std::size_t n, const char* what) {
  if (v.shape(0) != n) throw std::invalid_argument(std::string(what) + ": expected length " + std::to_string(n));
  return v.data();
}

// A new NumPy float64 vector of length n that owns its buffer; *data points at it for the caller to fill.
inline OutVec new_vec(std::size_t n, double** data) {
  auto* buf = new double[n];
  *data = buf;
  nb::capsule owner(buf, [](void* p) noexcept { delete[] static_cast<double*>(p); });
  return OutVec(buf, {n}, owner);
}

// A servo control table from Python ({name: (addr, size) or (addr, size, sign_bit)}, hardware/servo_tables.py).
inline std::map<std::string, rt::Field> parse_fields(const nb::dict& table) {
  std::map<std::string, rt::Field> out;
  for (auto [k, v] : table) {
    const std::string name = nb::cast<std::string>(k);
    std::vector<int> e;
    try {
      e = nb::cast<std::vector<int>>(v);
    } catch (const nb::cast_error&) {
      throw std::invalid_argument("servo table entry '" + name + "' must be (addr, size) or (addr, size, sign_bit)");
    }
    if (e.size() != 2 && e.size() != 3)
      throw std::invalid_argument("servo table entry '" + name + "' must be (addr, size) or (addr, size, sign_bit)");
    if (e[0] < 0 || e[0] > 0xFFFF) throw std::invalid_argument("servo table entry '" + name + "': bad address");
    rt::Field f;
    f.addr = static_cast<std::uint16_t>(e[0]);
    f.size = static_cast<std::uint16_t>(e[1]);
    f.sign_bit = e.size() == 3 ? e[2] : -1;
    out[name] = f;
  }
  return out;
}

}  // namespace bind_util
