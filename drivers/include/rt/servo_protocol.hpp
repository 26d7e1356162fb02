// Servo bus wire protocols: Dynamixel Protocol 2.0 and Feetech STS/SCS.
//
// Encoders write into caller-owned buffers and decoders hand out views into their own buffer, so
// a bus cycle allocates nothing once the buffers have grown. Decoders are streaming: bytes arrive
// in arbitrary chunks (USB-serial latency timer, pty reads), garbage and corrupt frames are
// skipped by resynchronising on the next header, and every rejected frame is counted, because a
// silently dropped status packet is indistinguishable from a timeout otherwise.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace rt {

using Bytes = std::vector<std::uint8_t>;

// One decoded frame. For status packets `instr` is 0x55 (Dynamixel) or the error byte (Feetech,
// whose status frame has no instruction field); `error` is the status error byte in both cases.
struct PacketView {
  std::uint8_t id = 0;
  std::uint8_t instr = 0;
  std::uint8_t error = 0;
  const std::uint8_t* params = nullptr;  // Dynamixel status: after the error byte
  std::size_t size = 0;
};

struct DecoderCounters {
  std::uint64_t frames = 0;         // accepted frames
  std::uint64_t crc_errors = 0;     // header + length fine, CRC/checksum wrong
  std::uint64_t bad_frames = 0;     // header found but reserved/length/stuffing invalid
  std::uint64_t garbage_runs = 0;   // runs of bytes discarded while hunting for a header
  std::uint64_t garbage_bytes = 0;
  std::uint64_t errors() const { return crc_errors + bad_frames + garbage_runs; }
};

// Streaming frame decoder. The byte buffer, garbage accounting and compaction are shared here; each
// protocol implements only `parse`, which walks the buffer from head_ and delivers complete frames.
class Decoder {
 public:
  using Sink = std::function<void(const PacketView&)>;
  virtual ~Decoder() = default;
  // Consumes bytes; calls sink for each valid frame. Returns the number of frames delivered.
  std::size_t feed(const std::uint8_t* data, std::size_t n, const Sink& sink) {
    buf_.insert(buf_.end(), data, data + n);
    return parse(sink, false);
  }
  // No more bytes will come for the frame being assembled (deadline passed): count it as bad and
  // parse whatever complete frames follow it in the buffer.
  std::size_t drain(const Sink& sink) { return parse(sink, true); }
  void reset() {  // drop buffered bytes (after a flush); counters are kept
    buf_.clear();
    head_ = 0;
    in_garbage_ = false;
  }
  std::size_t pending() const { return buf_.size() - head_; }
  const DecoderCounters& counters() const { return counters_; }

 protected:
  virtual std::size_t parse(const Sink& sink, bool draining) = 0;
  // Skip k bytes that cannot start a frame (one garbage run however many calls it spans).
  void discard(std::size_t k) {
    if (k == 0) return;
    if (!in_garbage_) ++counters_.garbage_runs;
    in_garbage_ = true;
    counters_.garbage_bytes += k;
    head_ += k;
  }
  // A header that led to a bad frame: count it, skip its first byte and hunt again from the next one.
  void reject(std::uint64_t& counter) {
    ++counter;
    ++head_;
    in_garbage_ = false;
  }
  // A frame of `total` bytes was delivered.
  void accept(std::size_t total) {
    head_ += total;
    in_garbage_ = false;
    ++counters_.frames;
  }
  // Drop consumed bytes now and then rather than on every frame.
  void compact() {
    if (head_ > 4096 || head_ == buf_.size()) {
      buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }

  DecoderCounters counters_;
  Bytes buf_;
  std::size_t head_ = 0;
  bool in_garbage_ = false;
};

enum class Protocol { Dynamixel2 = 0, FeetechSTS = 1, FeetechSCS = 2 };

Protocol parse_protocol(const std::string& name);  // "dynamixel2" | "feetech" | "feetech_scs"

// Instruction encoding and status encoding (the latter for device-side tools and tests).
class Codec {
 public:
  virtual ~Codec() = default;
  virtual void ping(std::uint8_t id, Bytes& out) const = 0;
  virtual void read(std::uint8_t id, std::uint16_t addr, std::uint16_t len, Bytes& out) const = 0;
  virtual void write(std::uint8_t id, std::uint16_t addr, const std::uint8_t* data, std::size_t len,
                     Bytes& out) const = 0;
  virtual void sync_read(std::uint16_t addr, std::uint16_t len, const std::uint8_t* ids, std::size_t n,
                         Bytes& out) const = 0;
  // data holds n * len bytes, servo-major.
  virtual void sync_write(std::uint16_t addr, std::uint16_t len, const std::uint8_t* ids, std::size_t n,
                          const std::uint8_t* data, Bytes& out) const = 0;
  virtual void status(std::uint8_t id, std::uint8_t error, const std::uint8_t* params, std::size_t n,
                      Bytes& out) const = 0;
  virtual std::unique_ptr<Decoder> decoder() const = 0;
  virtual bool little_endian() const { return true; }
  virtual std::string describe_error(std::uint8_t error) const = 0;
  // Bytes on the wire for a status packet carrying n data bytes (for wire-time budgets).
  virtual std::size_t status_size(std::size_t n) const = 0;
  static std::unique_ptr<Codec> make(Protocol p);
};

// --- Dynamixel Protocol 2.0 ---------------------------------------------------------------
namespace dxl2 {
constexpr std::uint8_t kBroadcast = 0xFE;
constexpr std::uint8_t kPing = 0x01, kRead = 0x02, kWrite = 0x03, kSyncRead = 0x82, kSyncWrite = 0x83,
                       kFastSyncRead = 0x8A, kStatus = 0x55;
constexpr std::size_t kMaxLength = 1024;  // largest LENGTH field accepted by the decoder

std::uint16_t crc16(std::uint16_t crc, const std::uint8_t* data, std::size_t n);

// Raw packet from id/instruction/params: header, stuffing, length, CRC.
void encode(std::uint8_t id, std::uint8_t instr, const std::uint8_t* params, std::size_t n, Bytes& out);
void fast_sync_read(std::uint16_t addr, std::uint16_t len, const std::uint8_t* ids, std::size_t n, Bytes& out);
// Device side of FAST_SYNC_READ: one packet, per-servo [error id data crc] segments.
void fast_sync_status(const std::uint8_t* ids, const std::uint8_t* errors, const std::uint8_t* data,
                      std::size_t n, std::uint16_t len, Bytes& out);
// Splits a FAST_SYNC_READ status (params after the shared 0x55) into per-servo segments.
// Returns false if the payload size does not match n servos of len bytes.
bool split_fast_sync(const PacketView& p, std::size_t n, std::uint16_t len,
                     const std::function<void(std::uint8_t id, std::uint8_t err, const std::uint8_t*)>& seg);
}  // namespace dxl2

// --- Feetech STS (little-endian) / SCS (big-endian) -----------------------------------------
namespace feetech {
constexpr std::uint8_t kBroadcast = 0xFE;
constexpr std::uint8_t kPing = 0x01, kRead = 0x02, kWrite = 0x03, kSyncRead = 0x82, kSyncWrite = 0x83;
std::uint8_t checksum(const std::uint8_t* data, std::size_t n);  // ~sum over ID..last param
void encode(std::uint8_t id, std::uint8_t instr, const std::uint8_t* params, std::size_t n, Bytes& out);
}  // namespace feetech

// Random + mutated streams through a decoder (the fuzz entry point, run in C++ for speed).
struct FuzzReport {
  std::uint64_t streams = 0, bytes = 0, frames_sent = 0, mutated_frames = 0, unmutated_frames = 0;
  std::uint64_t recovered = 0;       // unmutated frames decoded back intact and in order
  std::uint64_t missed = 0;          // unmutated frames not decoded
  std::uint64_t error_events = 0;    // decoder error counter increments over mutated streams
  std::uint64_t streams_short_counted = 0;  // mutated streams with fewer error events than mutated frames
  std::uint64_t random_frames = 0;   // frames "found" in pure random streams (must carry a valid CRC)
};
FuzzReport fuzz_decoder(Protocol p, std::uint64_t streams, std::uint64_t seed);

}  // namespace rt
