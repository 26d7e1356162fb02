#include "rt/servo_bus.hpp"

#include <algorithm>
#include <stdexcept>

namespace rt {

namespace {
const Field& require(const std::map<std::string, Field>& t, const std::string& name) {
  auto it = t.find(name);
  if (it == t.end()) throw std::invalid_argument("servo table lacks required field '" + name + "'");
  return it->second;
}
Field optional(const std::map<std::string, Field>& t, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    auto it = t.find(n);
    if (it != t.end()) return it->second;
  }
  return Field{};
}
}  // namespace

ServoBus::ServoBus(const std::string& port, int baud, Protocol protocol, std::vector<int> ids,
                   std::map<std::string, Field> table, double timeout_ms, int retries, bool fast_sync_read,
                   const std::string& effort_register)
    : port_(port, baud),
      codec_(Codec::make(protocol)),
      decoder_(codec_->decoder()),
      protocol_(protocol),
      ids_(std::move(ids)),
      table_(std::move(table)),
      timeout_ns_(static_cast<std::int64_t>(timeout_ms * 1e6)),
      retries_(retries),
      fast_sync_read_(fast_sync_read) {
  protocol_name_ = protocol == Protocol::Dynamixel2 ? "dynamixel2" : protocol == Protocol::FeetechSTS ? "feetech" : "feetech_scs";
  if (ids_.empty()) throw std::invalid_argument("ServoBus: ids is empty");
  for (int id : ids_) {
    if (id < 0 || id > 252) throw std::invalid_argument("ServoBus: servo id " + std::to_string(id) + " outside 0..252");
    if (std::count(ids_.begin(), ids_.end(), id) > 1)
      throw std::invalid_argument("ServoBus: duplicate servo id " + std::to_string(id));
    ids8_.push_back(static_cast<std::uint8_t>(id));
  }
  if (!(timeout_ms > 0)) throw std::invalid_argument("ServoBus: timeout_ms must be > 0");
  if (retries < 0) throw std::invalid_argument("ServoBus: retries must be >= 0");
  if (fast_sync_read && protocol != Protocol::Dynamixel2)
    throw std::invalid_argument("ServoBus: fast_sync_read exists only in Dynamixel Protocol 2.0");
  for (const auto& [name, f] : table_)
    if (f.size != 1 && f.size != 2 && f.size != 4)
      throw std::invalid_argument("servo table field '" + name + "' has size " + std::to_string(f.size) +
                                  " (expected 1, 2 or 4)");
  pos_ = require(table_, "present_position");
  goal_ = require(table_, "goal_position");
  torque_ = require(table_, "torque_enable");
  vel_ = optional(table_, {"present_velocity"});
  // Feetech STS has both: a signed present_load and an unsigned present_current magnitude.
  eff_ = effort_register.empty() ? optional(table_, {"present_current", "present_load"}) : require(table_, effort_register);
  std::uint16_t lo = pos_.addr, hi = pos_.addr + pos_.size;
  for (const Field* f : {&vel_, &eff_})
    if (f->size) {
      lo = std::min(lo, f->addr);
      hi = std::max<std::uint16_t>(hi, f->addr + f->size);
    }
  span_addr_ = lo;
  span_len_ = hi - lo;
  span_data_.assign(ids_.size() * span_len_, 0);
  // The state request never changes: encode it once, not every cycle.
  if (fast_sync_read_)
    dxl2::fast_sync_read(span_addr_, span_len_, ids8_.data(), ids8_.size(), state_tx_);
  else
    codec_->sync_read(span_addr_, span_len_, ids8_.data(), ids8_.size(), state_tx_);
  goal_bytes_.assign(ids_.size() * goal_.size, 0);
  rx_chunk_.assign(4096, 0);
}

const Field& ServoBus::field(const std::string& name) const { return require(table_, name); }

std::int64_t ServoBus::wire_ns(std::size_t bytes) const {
  return static_cast<std::int64_t>(bytes) * 10 * 1000000000LL / port_.baud();  // 8N1: 10 bits per byte
}

std::int64_t decode_field(const Field& f, const std::uint8_t* b, bool little_endian) {
  std::uint32_t raw = 0;
  for (std::size_t i = 0; i < f.size; ++i) {
    const std::size_t shift = little_endian ? 8 * i : 8 * (f.size - 1 - i);
    raw |= static_cast<std::uint32_t>(b[i]) << shift;
  }
  if (f.sign_bit >= 0) {
    const std::uint32_t mag = raw & ((1u << f.sign_bit) - 1);
    return (raw >> f.sign_bit) & 1u ? -static_cast<std::int64_t>(mag) : mag;
  }
  if (f.size == 4) return static_cast<std::int32_t>(raw);
  if (f.size == 2) return static_cast<std::int16_t>(raw);
  return static_cast<std::int8_t>(raw);
}

void encode_field(const Field& f, std::int64_t v, std::uint8_t* b, bool little_endian) {
  std::uint32_t raw;
  if (f.sign_bit >= 0) {
    const std::uint32_t mag = static_cast<std::uint32_t>(std::min<std::int64_t>(v < 0 ? -v : v, (1LL << f.sign_bit) - 1));
    raw = mag | (v < 0 ? 1u << f.sign_bit : 0u);
  } else {
    raw = static_cast<std::uint32_t>(v);
  }
  for (std::size_t i = 0; i < f.size; ++i) {
    const std::size_t shift = little_endian ? 8 * i : 8 * (f.size - 1 - i);
    b[i] = static_cast<std::uint8_t>(raw >> shift);
  }
}

std::int64_t ServoBus::decode(const Field& f, const std::uint8_t* b) const {
  return decode_field(f, b, codec_->little_endian());
}

void ServoBus::encode(const Field& f, std::int64_t v, std::uint8_t* b) const {
  encode_field(f, v, b, codec_->little_endian());
}

std::int64_t ServoBus::goal_max() const {
  if (goal_.sign_bit >= 0) return (1LL << goal_.sign_bit) - 1;
  return (1LL << (8 * goal_.size - 1)) - 1;
}
std::int64_t ServoBus::goal_min() const {
  if (goal_.sign_bit >= 0) return -goal_max();
  return -(1LL << (8 * goal_.size - 1));
}

void ServoBus::note_status_error(std::uint8_t id, std::uint8_t err) {
  ++c_.status_errors;
  last_error_ = "servo " + std::to_string(id) + " status error: " + codec_->describe_error(err);
}

ServoBus::Tx ServoBus::send_only(const Bytes& tx) {
  ++c_.transactions;
  const std::int64_t t0 = monotonic_ns();
  if (port_.write_all(tx.data(), tx.size(), t0 + timeout_ns_ + wire_ns(tx.size())) != IoStatus::Ok) {
    ++c_.io_errors;
    last_error_ = "write failed: " + port_.last_error();
    return Tx::Io;
  }
  return Tx::Ok;
}

ServoBus::Tx ServoBus::transact(const Bytes& tx, const std::uint8_t* expect, std::size_t n, std::size_t status_bytes,
                                std::vector<bool>& got,
                                const std::function<void(std::size_t, const PacketView&)>& on_packet) {
  port_.flush_input();  // stale bytes from an earlier timed-out exchange must not answer this one
  decoder_->reset();
  got.assign(n, false);
  const Tx sent = send_only(tx);
  if (sent != Tx::Ok) return sent;
  const std::int64_t t0 = monotonic_ns();
  const std::int64_t per_packet = timeout_ns_ + wire_ns(status_bytes);
  std::int64_t deadline = t0 + wire_ns(tx.size()) + per_packet;
  std::size_t received = 0;
  const Decoder::Sink sink = [&](const PacketView& p) {
    if (protocol_ == Protocol::Dynamixel2 && p.instr != dxl2::kStatus) return;  // an echoed instruction
    for (std::size_t k = 0; k < n; ++k) {
      if (got[k] || expect[k] != p.id) continue;
      got[k] = true;
      ++received;
      if (p.error) note_status_error(p.id, p.error);
      on_packet(k, p);
      deadline = monotonic_ns() + per_packet;
      return;
    }
  };
  while (received < n) {
    std::size_t m = 0;
    const IoStatus s = port_.read_some(rx_chunk_.data(), rx_chunk_.size(), m, deadline);
    if (s == IoStatus::Ok) {
      decoder_->feed(rx_chunk_.data(), m, sink);
      continue;
    }
    decoder_->drain(sink);  // a corrupt length may be hiding complete packets behind it
    if (received == n) break;
    if (s == IoStatus::Error) {
      ++c_.io_errors;
      last_error_ = "read failed: " + port_.last_error();
      return Tx::Io;
    }
    c_.timeouts += n - received;
    std::string missing;
    for (std::size_t k = 0; k < n; ++k)
      if (!got[k]) missing += (missing.empty() ? "" : ",") + std::to_string(expect[k]);
    last_error_ = "timeout waiting for servo " + missing;
    return Tx::Timeout;
  }
  rtt_.add(monotonic_ns() - t0);
  return Tx::Ok;
}

int ServoBus::ping(std::uint8_t id) {
  std::unique_lock<std::mutex> lk(mu_);
  codec_->ping(id, tx_);
  int model = -1;
  const auto handle = [&](std::size_t, const PacketView& p) {
    if (p.error) throw std::runtime_error("ping servo " + std::to_string(id) + ": " + codec_->describe_error(p.error));
    model = p.size >= 2 ? (p.params[0] | (p.params[1] << 8)) : 0;
  };
  for (int attempt = 0; attempt <= retries_; ++attempt) {
    const Tx r = transact(tx_, &id, 1, codec_->status_size(3), got_, handle);
    if (r == Tx::Io) throw std::runtime_error("ping servo " + std::to_string(id) + ": " + last_error_);
    if (r == Tx::Ok) break;
    if (attempt == retries_)
      throw std::runtime_error("ping servo " + std::to_string(id) + ": no answer after " +
                               std::to_string(retries_ + 1) + " attempts (" + last_error_ + ")");
    ++c_.retries;
  }
  if (protocol_ != Protocol::Dynamixel2) {  // Feetech PING carries no model number: read it
    auto it = table_.find("model_number");
    if (it == table_.end()) return 0;
    const Field f = it->second;
    lk.unlock();
    return static_cast<int>(read(id, f.addr, f.size));
  }
  return model;
}

std::uint32_t ServoBus::read(std::uint8_t id, std::uint16_t addr, std::uint16_t size) {
  if (size < 1 || size > 4) throw std::invalid_argument("read: size must be 1..4");
  std::lock_guard<std::mutex> lk(mu_);
  codec_->read(id, addr, size, tx_);
  std::uint32_t value = 0;
  bool short_reply = false;
  const auto handle = [&](std::size_t, const PacketView& p) {
    if (p.error) throw std::runtime_error("read servo " + std::to_string(id) + ": " + codec_->describe_error(p.error));
    if (p.size < size) {
      short_reply = true;
      return;
    }
    for (std::size_t i = 0; i < size; ++i) {
      const std::size_t shift = codec_->little_endian() ? 8 * i : 8 * (size - 1 - i);
      value |= static_cast<std::uint32_t>(p.params[i]) << shift;
    }
  };
  for (int attempt = 0; attempt <= retries_; ++attempt) {
    const Tx r = transact(tx_, &id, 1, codec_->status_size(size), got_, handle);
    if (r == Tx::Io) throw std::runtime_error("read servo " + std::to_string(id) + ": " + last_error_);
    if (r == Tx::Ok && !short_reply) return value;
    if (attempt == retries_)
      throw std::runtime_error("read servo " + std::to_string(id) + " @" + std::to_string(addr) + ": " +
                               (short_reply ? std::string("reply too short") : last_error_));
    short_reply = false;
    ++c_.retries;
  }
  return value;
}

void ServoBus::write(std::uint8_t id, std::uint16_t addr, std::uint16_t size, std::uint32_t value) {
  if (size < 1 || size > 4) throw std::invalid_argument("write: size must be 1..4");
  std::lock_guard<std::mutex> lk(mu_);
  std::uint8_t data[4];
  for (std::size_t i = 0; i < size; ++i) {
    const std::size_t shift = codec_->little_endian() ? 8 * i : 8 * (size - 1 - i);
    data[i] = static_cast<std::uint8_t>(value >> shift);
  }
  codec_->write(id, addr, data, size, tx_);
  if (id == 0xFE) {
    if (send_only(tx_) != Tx::Ok) throw std::runtime_error("write broadcast: " + last_error_);
    return;
  }
  const auto handle = [&](std::size_t, const PacketView& p) {
    if (p.error) throw std::runtime_error("write servo " + std::to_string(id) + ": " + codec_->describe_error(p.error));
  };
  for (int attempt = 0; attempt <= retries_; ++attempt) {
    const Tx r = transact(tx_, &id, 1, codec_->status_size(0), got_, handle);
    if (r == Tx::Ok) return;
    if (r == Tx::Io) throw std::runtime_error("write servo " + std::to_string(id) + ": " + last_error_);
    if (attempt == retries_) throw std::runtime_error("write servo " + std::to_string(id) + ": " + last_error_);
    ++c_.retries;
  }
}

void ServoBus::set_torque(bool enable) {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<std::uint8_t> data(ids8_.size() * torque_.size, 0);
  for (std::size_t k = 0; k < ids8_.size(); ++k) encode(torque_, enable ? 1 : 0, data.data() + k * torque_.size);
  codec_->sync_write(torque_.addr, torque_.size, ids8_.data(), ids8_.size(), data.data(), tx_);
  if (send_only(tx_) != Tx::Ok) throw std::runtime_error("set_torque: " + last_error_);
  port_.drain_output();  // torque changes are rare and matter: return once the bytes are on the wire
}

ReadResult ServoBus::read_state(std::int32_t* pos, std::int32_t* vel, std::int32_t* eff, bool* fresh) {
  std::lock_guard<std::mutex> lk(mu_);
  ++c_.cycles;
  const std::size_t n = ids8_.size();
  std::fill(fresh, fresh + n, false);
  Tx r;
  if (fast_sync_read_) {
    const std::uint8_t bcast = dxl2::kBroadcast;
    r = transact(state_tx_, &bcast, 1, 8 + n * (span_len_ + 4), got_, [&](std::size_t, const PacketView& p) {
      dxl2::split_fast_sync(p, n, span_len_, [&](std::uint8_t id, std::uint8_t err, const std::uint8_t* d) {
        for (std::size_t k = 0; k < n; ++k)
          if (ids8_[k] == id) {
            if (err) note_status_error(id, err);
            std::copy(d, d + span_len_, span_data_.begin() + static_cast<std::ptrdiff_t>(k * span_len_));
            fresh[k] = true;
          }
      });
    });
  } else {
    r = transact(state_tx_, ids8_.data(), n, codec_->status_size(span_len_), got_, [&](std::size_t k, const PacketView& p) {
      if (p.size < span_len_) return;
      std::copy(p.params, p.params + span_len_, span_data_.begin() + static_cast<std::ptrdiff_t>(k * span_len_));
      fresh[k] = true;
    });
  }
  ReadResult res;
  res.io_error = r == Tx::Io;
  for (std::size_t k = 0; k < n; ++k) {
    if (!fresh[k]) continue;
    ++res.received;
    const std::uint8_t* d = span_data_.data() + k * span_len_;
    pos[k] = static_cast<std::int32_t>(decode(pos_, d + (pos_.addr - span_addr_)));
    vel[k] = vel_.size ? static_cast<std::int32_t>(decode(vel_, d + (vel_.addr - span_addr_))) : 0;
    eff[k] = eff_.size ? static_cast<std::int32_t>(decode(eff_, d + (eff_.addr - span_addr_))) : 0;
  }
  if (res.received < n) ++c_.partial_cycles;
  return res;
}

bool ServoBus::write_goal(const std::int32_t* goal) {
  std::lock_guard<std::mutex> lk(mu_);
  for (std::size_t k = 0; k < ids8_.size(); ++k) encode(goal_, goal[k], goal_bytes_.data() + k * goal_.size);
  codec_->sync_write(goal_.addr, goal_.size, ids8_.data(), ids8_.size(), goal_bytes_.data(), tx_);
  return send_only(tx_) == Tx::Ok;
}

BusCounters ServoBus::counters() const {
  std::lock_guard<std::mutex> lk(mu_);
  BusCounters c = c_;
  const DecoderCounters& d = decoder_->counters();
  c.crc_errors = d.crc_errors;
  c.bad_frames = d.bad_frames;
  c.garbage_runs = d.garbage_runs;
  return c;
}

std::string ServoBus::last_error() const {
  std::lock_guard<std::mutex> lk(mu_);
  return last_error_;
}

std::size_t ServoBus::cycle_wire_bytes() const {
  const std::size_t n = ids8_.size();
  Bytes tmp;
  std::vector<std::uint8_t> zeros(n * std::max<std::size_t>(goal_.size, 1), 0);
  const std::size_t read_bytes = state_tx_.size() + (fast_sync_read_ ? 8 + n * (span_len_ + 4)
                                                                    : n * codec_->status_size(span_len_));
  codec_->sync_write(goal_.addr, goal_.size, ids8_.data(), n, zeros.data(), tmp);
  return read_bytes + tmp.size();
}

void ServoBus::close() {
  std::lock_guard<std::mutex> lk(mu_);
  port_.close();
}

}  // namespace rt
