// Device side of a servo bus: the servos' control-table memory and the protocol responder.
//
// This is what a chain of real servos does with the bytes a host puts on the wire: decode
// instructions (the same streaming decoders the host uses), read and write each servo's
// control table, and build the status packets they would send back, each with the time it would
// leave the wire (instruction bytes + the servo's return delay + the reply bytes, at the baud in
// the servos' own baud register). The emulator's real-time thread owns both objects; other
// threads (Python configuring, tests poking registers, the side channel) go through the bank's
// priority-inheritance mutex, so a preempted Python thread holding it is boosted rather than
// stalling the real-time thread behind it.
#pragma once
#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "rt/servo_bus.hpp"
#include "rt/servo_protocol.hpp"

namespace rt {

// pthread mutex with PTHREAD_PRIO_INHERIT; satisfies Lockable (std::lock_guard, std::unique_lock).
class PiMutex {
 public:
  PiMutex();
  ~PiMutex();
  PiMutex(const PiMutex&) = delete;
  PiMutex& operator=(const PiMutex&) = delete;
  void lock() { pthread_mutex_lock(&m_); }
  void unlock() { pthread_mutex_unlock(&m_); }
  bool try_lock() { return pthread_mutex_trylock(&m_) == 0; }

 private:
  pthread_mutex_t m_;
};

// Protocol error codes a status packet carries (Dynamixel 2.0 e-Manual "Status Packet").
namespace emu_err {
constexpr std::uint8_t kInstruction = 0x02, kDataLength = 0x05, kAccess = 0x07, kAlert = 0x80;
}

struct GoalLog {
  std::vector<std::int64_t> t_ns;   // when the write arrived
  std::vector<std::int32_t> goals;  // servo-major rows: goal_position of every servo after the write
};

// N servos' memory. Addresses and sizes come from the YAML control table (hardware/servo_tables.py);
// the initial memory image (factory defaults + the user's EEPROM settings) is built there too.
class RegisterBank {
 public:
  RegisterBank(Protocol protocol, std::vector<int> ids, std::map<std::string, Field> table,
               std::vector<Bytes> memory, std::vector<std::uint8_t> writable, std::size_t goal_log_capacity);

  std::size_t size() const { return ids_.size(); }
  int index_of(std::uint8_t id) const { return slot_[id]; }  // -1: no such servo
  std::uint8_t id(std::size_t k) const { return ids_[k]; }
  const std::vector<std::uint8_t>& ids() const { return ids_; }
  Protocol protocol() const { return protocol_; }
  const Field* field(const std::string& name) const;  // nullptr when the model lacks it
  const Field& require(const std::string& name) const;
  std::size_t memory_size() const { return mem_size_; }

  // Unlocked accessors: the caller holds mutex().
  std::int64_t get(std::size_t k, const Field& f) const;  // signed per the table
  std::uint32_t get_raw(std::size_t k, const Field& f) const;
  void set(std::size_t k, const Field& f, std::int64_t v);  // device-side write, no access checks
  bool read(std::size_t k, std::uint16_t addr, std::uint16_t n, std::uint8_t* out) const;
  // A host WRITE: access rights, the Dynamixel EEPROM torque interlock, and the servo's reaction
  // (torque on: goal := present, so the arm holds where it is). Returns a protocol error code.
  // `goal_written` is set when the write touched goal_position.
  std::uint8_t host_write(std::size_t k, std::uint16_t addr, const std::uint8_t* d, std::size_t n, bool& goal_written);
  void log_goals(std::int64_t t_ns);  // append every servo's goal_position to the bounded log

  PiMutex& mutex() const { return mu_; }
  GoalLog goal_log() const;  // locks
  void clear_goal_log();     // locks
  std::uint64_t goal_log_dropped() const { return log_dropped_; }

 private:
  Protocol protocol_;
  bool little_;
  std::vector<std::uint8_t> ids_;
  int slot_[256];
  std::map<std::string, Field> table_;
  std::size_t mem_size_;
  std::vector<Bytes> mem_;
  std::vector<std::uint8_t> writable_;
  const Field* torque_ = nullptr;
  const Field* goal_ = nullptr;
  const Field* present_ = nullptr;
  std::uint16_t eeprom_end_ = 0;  // Dynamixel: addresses below torque_enable are locked while torque is on
  std::size_t log_cap_;
  std::vector<std::int64_t> log_t_;
  std::vector<std::int32_t> log_goals_;
  std::size_t log_n_ = 0;
  std::uint64_t log_dropped_ = 0;
  mutable PiMutex mu_;
};

// One status packet waiting for the moment it would finish crossing the wire.
struct PendingReply {
  std::int64_t due_ns = 0;
  std::int64_t rx_ns = 0;  // when the instruction it answers was read
  Bytes bytes;
};

// Replies waiting for their due time, in wire order. Fixed capacity with buffers reserved up front:
// the real-time thread never calls malloc (which can block on the process's mmap lock, held by a
// preempted ordinary thread, for milliseconds) once the emulator runs.
class ReplyQueue {
 public:
  explicit ReplyQueue(std::size_t capacity = 512, std::size_t bytes = 1024);
  bool empty() const { return n_ == 0; }
  std::size_t size() const { return n_; }
  PendingReply& front() { return slots_[head_]; }
  void pop_front() {
    head_ = (head_ + 1) % slots_.size();
    --n_;
  }
  // The slot to fill next; false (and the reply is dropped, counted) when the queue is full.
  PendingReply* push_back();
  std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  std::vector<PendingReply> slots_;
  std::size_t head_ = 0, n_ = 0;
  std::atomic<std::uint64_t> dropped_{0};
};

struct ResponderCounters {
  std::uint64_t requests = 0, replies = 0, unknown_instruction = 0, corrupted_replies = 0;
};

// Decodes host instructions and queues the status packets the addressed servos send back.
class ServoResponder {
 public:
  // baud_codes: baud_rate register value -> bit/s for this servo family.
  ServoResponder(RegisterBank& bank, std::map<int, int> baud_codes, bool wire_time);

  // Bytes read from the host at t_rx; replies are appended to `out` in wire order.
  void feed(const std::uint8_t* data, std::size_t n, std::int64_t t_rx, ReplyQueue& out);
  ResponderCounters counters() const;
  DecoderCounters decoder_counters() const;
  std::int64_t wire_ns(std::size_t bytes) const;  // at the current baud register (8N1)
  int baud() const;
  double return_delay_s(std::size_t k) const;

  // Faults: servos that never answer, the next n replies with a wrong checksum byte, and a random
  // bit flip per status packet with probability p (a noisy line; the reality gap's packet_corruption).
  void set_silent(std::uint8_t id, bool silent);
  void clear_silent();
  void corrupt_next(int n) { corrupt_next_ = n; }
  void set_corruption(double p, std::uint64_t seed);

 private:
  void handle(const PacketView& v, std::size_t wire_bytes, std::int64_t t_rx, ReplyQueue& out);
  void status(std::size_t k, std::uint8_t error, const std::uint8_t* params, std::size_t n);
  void queue(std::size_t k, std::int64_t t_rx, ReplyQueue& out);  // scratch_ -> out
  bool answers_writes(std::size_t k) const;

  RegisterBank& bank_;
  std::unique_ptr<Codec> codec_;
  std::unique_ptr<Decoder> decoder_;
  bool dxl_;
  std::map<int, int> baud_codes_;
  bool wire_time_;
  const Field* baud_ = nullptr;
  const Field* delay_ = nullptr;
  const Field* status_level_ = nullptr;
  const Field* hw_error_ = nullptr;
  const Field* model_ = nullptr;
  const Field* firmware_ = nullptr;
  std::vector<bool> silent_;
  int corrupt_next_ = 0;
  double corrupt_p_ = 0.0;
  std::mt19937_64 rng_;
  std::int64_t wire_cursor_ = 0;  // when the wire is free again (end of the last queued reply)
  Bytes scratch_, params_, seg_data_, status_params_;
  // The decoder's sink, built once (a lambda capturing more than `this` would allocate every feed).
  Decoder::Sink sink_;
  std::int64_t feed_t_rx_ = 0;
  ReplyQueue* feed_out_ = nullptr;
  std::vector<std::uint8_t> seg_ids_, seg_err_;
  ResponderCounters c_;
};

}  // namespace rt
