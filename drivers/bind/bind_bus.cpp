// Python bindings for the serial transport, the servo protocol codecs (used by tests and the
// device emulators) and the ServoBus. Blocking calls release the GIL.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <stdexcept>

#include "bind_util.hpp"
#include "rt/servo_bus.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

nb::bytes to_bytes(const rt::Bytes& b) { return nb::bytes(reinterpret_cast<const char*>(b.data()), b.size()); }
rt::Bytes from_bytes(const nb::bytes& b) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(b.c_str());
  return rt::Bytes(p, p + b.size());
}
std::vector<std::uint8_t> id_list(const std::vector<int>& ids) {
  std::vector<std::uint8_t> out;
  for (int id : ids) {
    if (id < 0 || id > 253) throw std::invalid_argument("servo id " + std::to_string(id) + " outside 0..253");
    out.push_back(static_cast<std::uint8_t>(id));
  }
  return out;
}

struct PyCodec {
  std::unique_ptr<rt::Codec> codec;
  rt::Protocol protocol;
};
struct PyDecoder {
  std::unique_ptr<rt::Decoder> dec;
};

nb::list collect(PyDecoder& d, const nb::bytes* data) {
  std::vector<nb::tuple> out;
  const rt::Decoder::Sink sink = [&out](const rt::PacketView& v) {
    out.push_back(nb::make_tuple(v.id, v.instr, v.error,
                                 nb::bytes(reinterpret_cast<const char*>(v.params), v.size)));
  };
  if (data)
    d.dec->feed(reinterpret_cast<const std::uint8_t*>(data->c_str()), data->size(), sink);
  else
    d.dec->drain(sink);
  nb::list l;
  for (auto& t : out) l.append(t);
  return l;
}

nb::dict decoder_counters(const rt::DecoderCounters& c) {
  nb::dict d;
  d["frames"] = c.frames;
  d["crc_errors"] = c.crc_errors;
  d["bad_frames"] = c.bad_frames;
  d["garbage_runs"] = c.garbage_runs;
  d["garbage_bytes"] = c.garbage_bytes;
  d["errors"] = c.errors();
  return d;
}

}  // namespace

nb::dict bus_stats(const rt::ServoBus& bus) {
  rt::BusCounters c;
  {
    nb::gil_scoped_release nogil;
    c = bus.counters();
  }
  nb::dict d;
  d["transactions"] = c.transactions;
  d["cycles"] = c.cycles;
  d["partial_cycles"] = c.partial_cycles;
  d["timeouts"] = c.timeouts;
  d["crc_errors"] = c.crc_errors;
  d["bad_frames"] = c.bad_frames;
  d["garbage_runs"] = c.garbage_runs;
  d["status_errors"] = c.status_errors;
  d["retries"] = c.retries;
  d["io_errors"] = c.io_errors;
  d["rtt_p50_us"] = bus.rtt().quantile_us(0.5);
  d["rtt_p99_us"] = bus.rtt().quantile_us(0.99);
  d["rtt_max_us"] = bus.rtt().max_us();
  d["rtt_count"] = bus.rtt().count();
  d["wire_bytes_per_cycle"] = bus.cycle_wire_bytes();
  d["low_latency"] = bus.port().low_latency();
  d["custom_baud"] = bus.port().custom_baud();
  d["last_error"] = bus.last_error();
  return d;
}

void bind_bus(nb::module_& m) {
  m.def("dxl2_crc16", [](nb::bytes data, unsigned crc) {
          return rt::dxl2::crc16(static_cast<std::uint16_t>(crc), reinterpret_cast<const std::uint8_t*>(data.c_str()), data.size());
        }, "data"_a, "crc"_a = 0, "Dynamixel Protocol 2.0 CRC-16 (polynomial 0x8005, init 0).");
  m.def("feetech_checksum", [](nb::bytes data) {
          return rt::feetech::checksum(reinterpret_cast<const std::uint8_t*>(data.c_str()), data.size());
        }, "data"_a, "Feetech checksum: ~sum(bytes) & 0xFF over ID..last parameter.");
  m.def("fuzz_decoder",
        [](const std::string& protocol, std::uint64_t streams, std::uint64_t seed) {
          rt::FuzzReport r;
          const rt::Protocol p = rt::parse_protocol(protocol);
          {
            nb::gil_scoped_release nogil;
            r = rt::fuzz_decoder(p, streams, seed);
          }
          nb::dict d;
          d["streams"] = r.streams;
          d["bytes"] = r.bytes;
          d["frames_sent"] = r.frames_sent;
          d["mutated_frames"] = r.mutated_frames;
          d["unmutated_frames"] = r.unmutated_frames;
          d["recovered"] = r.recovered;
          d["missed"] = r.missed;
          d["error_events"] = r.error_events;
          d["streams_short_counted"] = r.streams_short_counted;
          d["random_frames"] = r.random_frames;
          return d;
        },
        "protocol"_a, "streams"_a, "seed"_a = 1,
        "Feeds random and mutated byte streams through a decoder; returns counts (see FuzzReport).");

  nb::class_<PyDecoder>(m, "Decoder", "Streaming frame decoder: resyncs on garbage, counts bad frames.")
      .def("feed", [](PyDecoder& d, nb::bytes data) { return collect(d, &data); }, "data"_a,
           "Returns a list of (id, instr, error, params) for each complete valid frame.")
      .def("drain", [](PyDecoder& d) { return collect(d, nullptr); },
           "Gives up on the frame being assembled and returns complete frames behind it.")
      .def("reset", [](PyDecoder& d) { d.dec->reset(); })
      .def_prop_ro("pending", [](const PyDecoder& d) { return d.dec->pending(); })
      .def("counters", [](const PyDecoder& d) { return decoder_counters(d.dec->counters()); });

  nb::class_<PyCodec>(m, "Codec", "Packet encoder for 'dynamixel2', 'feetech' (STS) or 'feetech_scs'.")
      .def("__init__", [](PyCodec* self, const std::string& protocol) {
             const rt::Protocol p = rt::parse_protocol(protocol);
             new (self) PyCodec{rt::Codec::make(p), p};
           }, "protocol"_a)
      .def("ping", [](const PyCodec& c, int id) { rt::Bytes o; c.codec->ping(id_list({id})[0], o); return to_bytes(o); }, "id"_a)
      .def("read", [](const PyCodec& c, int id, int addr, int len) {
             rt::Bytes o; c.codec->read(id_list({id})[0], static_cast<std::uint16_t>(addr), static_cast<std::uint16_t>(len), o);
             return to_bytes(o);
           }, "id"_a, "addr"_a, "length"_a)
      .def("write", [](const PyCodec& c, int id, int addr, nb::bytes data) {
             rt::Bytes o, d = from_bytes(data);
             c.codec->write(id_list({id})[0], static_cast<std::uint16_t>(addr), d.data(), d.size(), o);
             return to_bytes(o);
           }, "id"_a, "addr"_a, "data"_a)
      .def("sync_read", [](const PyCodec& c, int addr, int len, const std::vector<int>& ids) {
             rt::Bytes o; auto i = id_list(ids);
             c.codec->sync_read(static_cast<std::uint16_t>(addr), static_cast<std::uint16_t>(len), i.data(), i.size(), o);
             return to_bytes(o);
           }, "addr"_a, "length"_a, "ids"_a)
      .def("fast_sync_read", [](const PyCodec& c, int addr, int len, const std::vector<int>& ids) {
             if (c.protocol != rt::Protocol::Dynamixel2) throw std::invalid_argument("fast_sync_read is Dynamixel-only");
             rt::Bytes o; auto i = id_list(ids);
             rt::dxl2::fast_sync_read(static_cast<std::uint16_t>(addr), static_cast<std::uint16_t>(len), i.data(), i.size(), o);
             return to_bytes(o);
           }, "addr"_a, "length"_a, "ids"_a)
      .def("sync_write", [](const PyCodec& c, int addr, int len, const std::vector<int>& ids, nb::bytes data) {
             rt::Bytes o, d = from_bytes(data); auto i = id_list(ids);
             if (d.size() != i.size() * static_cast<std::size_t>(len)) throw std::invalid_argument("sync_write: data must hold len(ids) * length bytes");
             c.codec->sync_write(static_cast<std::uint16_t>(addr), static_cast<std::uint16_t>(len), i.data(), i.size(), d.data(), o);
             return to_bytes(o);
           }, "addr"_a, "length"_a, "ids"_a, "data"_a)
      .def("status", [](const PyCodec& c, int id, int error, nb::bytes params) {
             rt::Bytes o, p = from_bytes(params);
             c.codec->status(id_list({id})[0], static_cast<std::uint8_t>(error), p.data(), p.size(), o);
             return to_bytes(o);
           }, "id"_a, "error"_a, "params"_a, "Device side: a status packet.")
      .def("fast_sync_status", [](const PyCodec& c, const std::vector<int>& ids, const std::vector<int>& errors, nb::bytes data, int len) {
             if (c.protocol != rt::Protocol::Dynamixel2) throw std::invalid_argument("fast_sync_status is Dynamixel-only");
             auto i = id_list(ids);
             std::vector<std::uint8_t> e(errors.begin(), errors.end());
             rt::Bytes o, d = from_bytes(data);
             if (e.size() != i.size() || d.size() != i.size() * static_cast<std::size_t>(len)) throw std::invalid_argument("fast_sync_status: sizes differ");
             rt::dxl2::fast_sync_status(i.data(), e.data(), d.data(), i.size(), static_cast<std::uint16_t>(len), o);
             return to_bytes(o);
           }, "ids"_a, "errors"_a, "data"_a, "length"_a, "Device side: the single FAST_SYNC_READ status packet.")
      .def("describe_error", [](const PyCodec& c, int e) { return c.codec->describe_error(static_cast<std::uint8_t>(e)); })
      .def("decoder", [](const PyCodec& c) { return PyDecoder{c.codec->decoder()}; })
      .def_prop_ro("little_endian", [](const PyCodec& c) { return c.codec->little_endian(); });

  nb::class_<rt::SerialPort>(m, "SerialPort", "Raw serial port (termios raw, ppoll deadlines, any baud).")
      .def(nb::init<const std::string&, int>(), "path"_a, "baud"_a, nb::call_guard<nb::gil_scoped_release>())
      .def("write", [](rt::SerialPort& p, nb::bytes data, double timeout_s) {
             const rt::Bytes d = from_bytes(data);
             rt::IoStatus s;
             {
               nb::gil_scoped_release nogil;
               s = p.write_all(d.data(), d.size(), rt::monotonic_ns() + static_cast<std::int64_t>(timeout_s * 1e9));
             }
             if (s == rt::IoStatus::Error) throw std::runtime_error("serial write: " + p.last_error());
             return s == rt::IoStatus::Ok;
           }, "data"_a, "timeout_s"_a = 1.0)
      .def("read", [](rt::SerialPort& p, std::size_t max_bytes, double timeout_s) {
             rt::Bytes buf(max_bytes);
             std::size_t got = 0;
             rt::IoStatus s;
             {
               nb::gil_scoped_release nogil;
               s = p.read_some(buf.data(), buf.size(), got, rt::monotonic_ns() + static_cast<std::int64_t>(timeout_s * 1e9));
             }
             if (s == rt::IoStatus::Error) throw std::runtime_error("serial read: " + p.last_error());
             buf.resize(got);
             return to_bytes(buf);
           }, "max_bytes"_a = 4096, "timeout_s"_a = 0.1, "Bytes available before the deadline (empty on timeout).")
      .def("flush_input", &rt::SerialPort::flush_input)
      .def("close", &rt::SerialPort::close)
      .def_prop_ro("baud", &rt::SerialPort::baud)
      .def_prop_ro("low_latency", &rt::SerialPort::low_latency)
      .def_prop_ro("custom_baud", &rt::SerialPort::custom_baud)
      .def_prop_ro("path", &rt::SerialPort::path);

  nb::class_<rt::ServoBus>(m, "ServoBus",
                           "N servos on one serial port: sync-read state / sync-write goals, counted errors.")
      .def("__init__",
           [](rt::ServoBus* self, const std::string& port, int baud, const std::string& protocol, std::vector<int> ids,
              nb::dict table, double timeout_ms, int retries, bool fast_sync_read, const std::string& effort_register) {
             auto t = bind_util::parse_fields(table);
             const rt::Protocol p = rt::parse_protocol(protocol);
             nb::gil_scoped_release nogil;
             new (self) rt::ServoBus(port, baud, p, std::move(ids), std::move(t), timeout_ms, retries, fast_sync_read,
                                     effort_register);
           },
           "port"_a, "baud"_a, "protocol"_a, "ids"_a, "table"_a, "timeout_ms"_a = 10.0, "retries"_a = 1,
           "fast_sync_read"_a = false, "effort_register"_a = "",
           "effort_register: the register read as effort in the state sync-read (default present_current, "
           "else present_load).")
      .def("ping", [](rt::ServoBus& b, int id) { return b.ping(id_list({id})[0]); }, "id"_a,
           nb::call_guard<nb::gil_scoped_release>(), "Model number; RuntimeError when the servo does not answer.")
      .def("read", [](rt::ServoBus& b, int id, int addr, int size) {
             return b.read(id_list({id})[0], static_cast<std::uint16_t>(addr), static_cast<std::uint16_t>(size));
           }, "id"_a, "addr"_a, "size"_a, nb::call_guard<nb::gil_scoped_release>(), "Raw unsigned register value.")
      .def("write", [](rt::ServoBus& b, int id, int addr, int size, std::int64_t value) {
             b.write(id_list({id})[0], static_cast<std::uint16_t>(addr), static_cast<std::uint16_t>(size),
                     static_cast<std::uint32_t>(value));
           }, "id"_a, "addr"_a, "size"_a, "value"_a, nb::call_guard<nb::gil_scoped_release>(),
           "Writes and waits for the status packet (negative values are stored two's complement).")
      .def("read_state", [](rt::ServoBus& b) {
             const std::size_t n = b.size();
             std::vector<std::int32_t> pos(n, 0), vel(n, 0), eff(n, 0);
             std::unique_ptr<bool[]> fresh(new bool[n]());
             {
               nb::gil_scoped_release nogil;
               b.read_state(pos.data(), vel.data(), eff.data(), fresh.get());
             }
             std::vector<bool> f(fresh.get(), fresh.get() + n);
             return nb::make_tuple(pos, vel, eff, f);
           }, "One sync-read of present position/velocity/effort (raw, signed): (pos, vel, eff, fresh).")
      .def("write_goal", [](rt::ServoBus& b, const std::vector<std::int32_t>& goal) {
             if (goal.size() != b.size()) throw std::invalid_argument("write_goal: one value per servo");
             nb::gil_scoped_release nogil;
             return b.write_goal(goal.data());
           }, "goal"_a, "One sync-write of raw goal positions; False on I/O error.")
      .def("set_torque", &rt::ServoBus::set_torque, "enable"_a, nb::call_guard<nb::gil_scoped_release>())
      .def("stats", &bus_stats)
      .def("close", &rt::ServoBus::close, nb::call_guard<nb::gil_scoped_release>())
      .def_prop_ro("ids", &rt::ServoBus::ids)
      .def_prop_ro("protocol", &rt::ServoBus::protocol_name)
      .def_prop_ro("size", &rt::ServoBus::size)
      .def_prop_ro("wire_bytes_per_cycle", &rt::ServoBus::cycle_wire_bytes);
}
