// A bus of N identical smart servos behind one serial port.
//
// The hot path is one sync-read of a contiguous register span (present position/velocity/effort)
// and one sync-write of goal positions per cycle; buffers are sized once at construction. Every
// transaction has a per-packet deadline (timeout plus the packet's wire time at the port's
// baud), and every failure is counted, never hidden: timeouts, CRC/checksum errors, malformed
// frames, status error bytes, I/O errors. Control-table addresses come from data (YAML).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "rt/histogram.hpp"
#include "rt/serial_port.hpp"
#include "rt/servo_protocol.hpp"

namespace rt {

struct Field {
  std::uint16_t addr = 0, size = 0;
  int sign_bit = -1;  // >= 0: sign-magnitude with the sign at this bit (Feetech); else two's complement
};

// One register's value <-> its bytes (little-endian for Dynamixel/STS, big-endian for SCS), for the host
// bus and the emulated device alike. Sign-magnitude values saturate at the magnitude's range.
std::int64_t decode_field(const Field& f, const std::uint8_t* bytes, bool little_endian);
void encode_field(const Field& f, std::int64_t value, std::uint8_t* bytes, bool little_endian);

struct BusCounters {
  std::uint64_t transactions = 0, timeouts = 0, crc_errors = 0, bad_frames = 0, garbage_runs = 0;
  std::uint64_t status_errors = 0, retries = 0, io_errors = 0, cycles = 0, partial_cycles = 0;
};

// Outcome of one state read: how many servos answered, and whether the port itself failed.
struct ReadResult {
  std::size_t received = 0;
  bool io_error = false;
};

class ServoBus {
 public:
  ServoBus(const std::string& port, int baud, Protocol protocol, std::vector<int> ids,
           std::map<std::string, Field> table, double timeout_ms, int retries = 1, bool fast_sync_read = false,
           const std::string& effort_register = "");  // "": present_current, else present_load, if the table has one

  int ping(std::uint8_t id);  // model number; throws std::runtime_error after retries
  std::uint32_t read(std::uint8_t id, std::uint16_t addr, std::uint16_t size);
  void write(std::uint8_t id, std::uint16_t addr, std::uint16_t size, std::uint32_t value);
  void set_torque(bool enable);  // one sync-write of torque_enable to every id

  // Hot path. Values are decoded as signed per the table; fresh[i] says servo i answered.
  ReadResult read_state(std::int32_t* pos, std::int32_t* vel, std::int32_t* eff, bool* fresh);
  bool write_goal(const std::int32_t* goal);  // sync-write goal_position; false on I/O error

  std::size_t size() const { return ids_.size(); }
  const std::vector<int>& ids() const { return ids_; }
  const Field& field(const std::string& name) const;
  bool has_field(const std::string& name) const { return table_.count(name) != 0; }
  bool has_velocity() const { return vel_.size != 0; }
  bool has_effort() const { return eff_.size != 0; }
  std::int64_t goal_min() const;  // representable goal range, for clamping
  std::int64_t goal_max() const;
  BusCounters counters() const;
  const Histogram& rtt() const { return rtt_; }
  std::string last_error() const;
  std::size_t cycle_wire_bytes() const;  // bytes on the wire for one read_state + write_goal
  const SerialPort& port() const { return port_; }
  const std::string& protocol_name() const { return protocol_name_; }
  void close();

  std::int64_t decode(const Field& f, const std::uint8_t* b) const;
  void encode(const Field& f, std::int64_t v, std::uint8_t* b) const;

 private:
  enum class Tx { Ok, Timeout, Io };
  // Sends tx, then collects one status packet per id in `expect` (any order), each within
  // timeout + its wire time of the previous one. `got[k]` marks expect[k] answered.
  Tx transact(const Bytes& tx, const std::uint8_t* expect, std::size_t n_expect, std::size_t status_bytes,
              std::vector<bool>& got, const std::function<void(std::size_t k, const PacketView&)>& on_packet);
  Tx send_only(const Bytes& tx);
  std::int64_t wire_ns(std::size_t bytes) const;
  void note_status_error(std::uint8_t id, std::uint8_t err);
  void sync_decoder_counters();

  SerialPort port_;
  std::unique_ptr<Codec> codec_;
  std::unique_ptr<Decoder> decoder_;
  std::string protocol_name_;
  Protocol protocol_;
  std::vector<int> ids_;
  std::vector<std::uint8_t> ids8_;
  std::map<std::string, Field> table_;
  Field pos_, vel_, eff_, goal_, torque_;
  std::uint16_t span_addr_ = 0, span_len_ = 0;
  std::int64_t timeout_ns_;
  int retries_;
  bool fast_sync_read_;

  mutable std::mutex mu_;
  Bytes tx_, state_tx_, rx_chunk_, goal_bytes_;
  std::vector<std::uint8_t> span_data_;
  std::vector<bool> got_;
  BusCounters c_;
  Histogram rtt_;
  std::string last_error_;
};

}  // namespace rt
