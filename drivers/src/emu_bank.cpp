// Register bank and protocol responder of the emulated servo bus (see rt/emu_bank.hpp).
// Instruction set and status rules: Dynamixel Protocol 2.0 e-Manual (PING, READ, WRITE, REBOOT,
// SYNC READ/WRITE, FAST SYNC READ; broadcast semantics; Status Return Level) and the Feetech
// SCS/STS protocol manual (PING, READ, WRITE, SYNC READ/WRITE).
#include "rt/emu_bank.hpp"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <stdexcept>

namespace rt {

PiMutex::PiMutex() {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT);
  pthread_mutex_init(&m_, &a);
  pthread_mutexattr_destroy(&a);
}
PiMutex::~PiMutex() { pthread_mutex_destroy(&m_); }

// --- RegisterBank ------------------------------------------------------------------------------
RegisterBank::RegisterBank(Protocol protocol, std::vector<int> ids, std::map<std::string, Field> table,
                           std::vector<Bytes> memory, std::vector<std::uint8_t> writable,
                           std::size_t goal_log_capacity)
    : protocol_(protocol), table_(std::move(table)), mem_(std::move(memory)), writable_(std::move(writable)),
      log_cap_(goal_log_capacity) {
  little_ = protocol != Protocol::FeetechSCS;
  std::fill(std::begin(slot_), std::end(slot_), -1);
  if (ids.empty()) throw std::invalid_argument("RegisterBank: no servo ids");
  for (int id : ids) {
    if (id < 0 || id > 252) throw std::invalid_argument("RegisterBank: servo id " + std::to_string(id) + " outside 0..252");
    if (slot_[id] >= 0) throw std::invalid_argument("RegisterBank: duplicate servo id " + std::to_string(id));
    slot_[id] = static_cast<int>(ids_.size());
    ids_.push_back(static_cast<std::uint8_t>(id));
  }
  if (mem_.size() != ids_.size()) throw std::invalid_argument("RegisterBank: one memory image per servo");
  mem_size_ = mem_[0].size();
  for (const auto& m : mem_)
    if (m.size() != mem_size_) throw std::invalid_argument("RegisterBank: memory images differ in size");
  if (writable_.size() != mem_size_) throw std::invalid_argument("RegisterBank: writable mask must cover the memory");
  for (const auto& [name, f] : table_)
    if (f.size == 0 || f.size > 4 || f.addr + f.size > mem_size_)
      throw std::invalid_argument("RegisterBank: register '" + name + "' lies outside the memory");
  torque_ = &require("torque_enable");
  goal_ = &require("goal_position");
  present_ = &require("present_position");
  // Feetech guards its EEPROM with a `lock` register instead, so there is no torque interlock there.
  if (protocol == Protocol::Dynamixel2 && !field("lock")) eeprom_end_ = torque_->addr;
  log_t_.assign(log_cap_, 0);
  log_goals_.assign(log_cap_ * ids_.size(), 0);
}

const Field* RegisterBank::field(const std::string& name) const {
  auto it = table_.find(name);
  return it == table_.end() ? nullptr : &it->second;
}

const Field& RegisterBank::require(const std::string& name) const {
  const Field* f = field(name);
  if (!f) throw std::invalid_argument("servo table has no register '" + name + "'");
  return *f;
}

std::uint32_t RegisterBank::get_raw(std::size_t k, const Field& f) const {
  const std::uint8_t* b = mem_[k].data() + f.addr;
  std::uint32_t raw = 0;
  for (std::size_t i = 0; i < f.size; ++i) raw |= static_cast<std::uint32_t>(b[i]) << (little_ ? 8 * i : 8 * (f.size - 1 - i));
  return raw;
}

std::int64_t RegisterBank::get(std::size_t k, const Field& f) const {
  return decode_field(f, mem_[k].data() + f.addr, little_);
}

void RegisterBank::set(std::size_t k, const Field& f, std::int64_t v) {
  encode_field(f, v, mem_[k].data() + f.addr, little_);
}

bool RegisterBank::read(std::size_t k, std::uint16_t addr, std::uint16_t n, std::uint8_t* out) const {
  if (n == 0 || static_cast<std::size_t>(addr) + n > mem_size_) return false;
  std::memcpy(out, mem_[k].data() + addr, n);
  return true;
}

std::uint8_t RegisterBank::host_write(std::size_t k, std::uint16_t addr, const std::uint8_t* d, std::size_t n,
                                      bool& goal_written) {
  if (n == 0 || static_cast<std::size_t>(addr) + n > mem_size_) return emu_err::kDataLength;
  for (std::size_t a = addr; a < addr + n; ++a)
    if (!writable_[a]) return emu_err::kAccess;
  if (eeprom_end_ && addr < eeprom_end_ && get_raw(k, *torque_)) return emu_err::kAccess;
  std::memcpy(mem_[k].data() + addr, d, n);
  auto touches = [&](const Field& f) { return addr < f.addr + f.size && f.addr < addr + n; };
  if (touches(*torque_) && get_raw(k, *torque_)) set(k, *goal_, get(k, *present_));  // hold where it is
  if (touches(*goal_)) goal_written = true;
  return 0;
}

void RegisterBank::log_goals(std::int64_t t_ns) {
  if (log_n_ >= log_cap_) {
    ++log_dropped_;
    return;
  }
  log_t_[log_n_] = t_ns;
  for (std::size_t k = 0; k < ids_.size(); ++k)
    log_goals_[log_n_ * ids_.size() + k] = static_cast<std::int32_t>(get(k, *goal_));
  ++log_n_;
}

GoalLog RegisterBank::goal_log() const {
  std::lock_guard<PiMutex> lk(mu_);
  GoalLog g;
  g.t_ns.assign(log_t_.begin(), log_t_.begin() + static_cast<std::ptrdiff_t>(log_n_));
  g.goals.assign(log_goals_.begin(), log_goals_.begin() + static_cast<std::ptrdiff_t>(log_n_ * ids_.size()));
  return g;
}

void RegisterBank::clear_goal_log() {
  std::lock_guard<PiMutex> lk(mu_);
  log_n_ = 0;
  log_dropped_ = 0;
}

// --- ReplyQueue ---------------------------------------------------------------------------------
ReplyQueue::ReplyQueue(std::size_t capacity, std::size_t bytes) : slots_(capacity) {
  for (auto& s : slots_) s.bytes.reserve(bytes);
}

PendingReply* ReplyQueue::push_back() {
  if (n_ == slots_.size()) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  PendingReply* r = &slots_[(head_ + n_) % slots_.size()];
  ++n_;
  return r;
}

// --- ServoResponder ----------------------------------------------------------------------------
ServoResponder::ServoResponder(RegisterBank& bank, std::map<int, int> baud_codes, bool wire_time)
    : bank_(bank),
      codec_(Codec::make(bank.protocol())),
      decoder_(codec_->decoder()),
      dxl_(bank.protocol() == Protocol::Dynamixel2),
      baud_codes_(std::move(baud_codes)),
      wire_time_(wire_time) {
  baud_ = bank.field("baud_rate");
  delay_ = bank.field("return_delay_time") ? bank.field("return_delay_time") : bank.field("return_delay");
  status_level_ = bank.field("status_return_level");
  hw_error_ = bank.field("hardware_error_status");
  model_ = bank.field("model_number");
  firmware_ = bank.field("firmware_version");
  silent_.assign(bank.size(), false);
  for (Bytes* b : {&scratch_, &params_, &seg_data_, &status_params_}) b->reserve(2048);
  sink_ = [this](const PacketView& v) {
    // Instruction bytes on the wire: header+id+length+instr+crc (10, Dynamixel) or header+id+len+instr+sum (6).
    handle(v, v.size + (dxl_ ? 10 : 6), feed_t_rx_, *feed_out_);
  };
}

int ServoResponder::baud() const {
  if (!baud_) return 1000000;
  auto it = baud_codes_.find(static_cast<int>(bank_.get_raw(0, *baud_)));
  return it == baud_codes_.end() ? 1000000 : it->second;
}

std::int64_t ServoResponder::wire_ns(std::size_t bytes) const {
  return wire_time_ ? static_cast<std::int64_t>(bytes) * 10 * 1000000000LL / baud() : 0;
}

double ServoResponder::return_delay_s(std::size_t k) const {
  return delay_ ? bank_.get_raw(k, *delay_) * 2e-6 : 0.0;  // 2 us per unit in both families
}

void ServoResponder::set_silent(std::uint8_t id, bool silent) {
  std::lock_guard<PiMutex> lk(bank_.mutex());
  const int k = bank_.index_of(id);
  if (k < 0) throw std::invalid_argument("no servo with id " + std::to_string(id));
  silent_[k] = silent;
}

void ServoResponder::clear_silent() {
  std::lock_guard<PiMutex> lk(bank_.mutex());
  std::fill(silent_.begin(), silent_.end(), false);
}

void ServoResponder::set_corruption(double p, std::uint64_t seed) {
  corrupt_p_ = p;
  rng_.seed(seed);
}

ResponderCounters ServoResponder::counters() const {
  std::lock_guard<PiMutex> lk(bank_.mutex());
  return c_;
}

DecoderCounters ServoResponder::decoder_counters() const {
  std::lock_guard<PiMutex> lk(bank_.mutex());
  return decoder_->counters();
}

bool ServoResponder::answers_writes(std::size_t k) const {
  if (!status_level_) return true;  // Dynamixel: level 2 answers writes; Feetech: level 1 answers everything
  return bank_.get_raw(k, *status_level_) >= (dxl_ ? 2u : 1u);
}

void ServoResponder::status(std::size_t k, std::uint8_t error, const std::uint8_t* params, std::size_t n) {
  if (dxl_ && hw_error_ && bank_.get_raw(k, *hw_error_)) error |= emu_err::kAlert;
  if (!dxl_) {
    codec_->status(bank_.id(k), error, params, n, scratch_);
    return;
  }
  status_params_.assign(1, error);  // Dynamixel: ERR then params, encoded without temporaries
  status_params_.insert(status_params_.end(), params, params + n);
  dxl2::encode(bank_.id(k), dxl2::kStatus, status_params_.data(), status_params_.size(), scratch_);
}

void ServoResponder::queue(std::size_t k, std::int64_t t_rx, ReplyQueue& out) {
  if (corrupt_next_ > 0) {  // a bad checksum byte: the host must count a CRC error
    --corrupt_next_;
    scratch_.back() ^= 0x5A;
    ++c_.corrupted_replies;
  } else if (corrupt_p_ > 0 && std::uniform_real_distribution<double>(0.0, 1.0)(rng_) < corrupt_p_) {
    const std::size_t byte = std::uniform_int_distribution<std::size_t>(0, scratch_.size() - 1)(rng_);
    scratch_[byte] ^= static_cast<std::uint8_t>(1u << std::uniform_int_distribution<int>(0, 7)(rng_));
    ++c_.corrupted_replies;
  }
  // Each servo starts its reply after its return delay, once the wire is free.
  wire_cursor_ += static_cast<std::int64_t>(return_delay_s(k) * 1e9 * (wire_time_ ? 1 : 0)) + wire_ns(scratch_.size());
  PendingReply* r = out.push_back();
  if (!r) return;
  r->due_ns = wire_cursor_;
  r->rx_ns = t_rx;
  r->bytes.assign(scratch_.begin(), scratch_.end());  // within the reserved capacity: no allocation
  ++c_.replies;
}

void ServoResponder::feed(const std::uint8_t* data, std::size_t n, std::int64_t t_rx, ReplyQueue& out) {
  std::lock_guard<PiMutex> lk(bank_.mutex());
  feed_t_rx_ = t_rx;
  feed_out_ = &out;
  decoder_->feed(data, n, sink_);
}

void ServoResponder::handle(const PacketView& v, std::size_t wire_bytes, std::int64_t t_rx,
                            ReplyQueue& out) {
  ++c_.requests;
  wire_cursor_ = std::max(wire_cursor_, t_rx) + wire_ns(wire_bytes);
  const std::uint8_t* p = v.params;
  const std::size_t np = v.size;
  const std::uint8_t inst = v.instr;
  const bool broadcast = v.id == dxl2::kBroadcast;
  const std::size_t hdr = dxl_ ? 4 : 2;  // addr+len fields of READ / SYNC: 2+2 bytes or 1+1
  auto addr_of = [&](const std::uint8_t* b) -> std::uint16_t { return dxl_ ? static_cast<std::uint16_t>(b[0] | b[1] << 8) : b[0]; };
  auto len_of = [&](const std::uint8_t* b) -> std::uint16_t { return dxl_ ? static_cast<std::uint16_t>(b[2] | b[3] << 8) : b[1]; };

  if (inst == dxl2::kSyncRead || (dxl_ && inst == dxl2::kFastSyncRead)) {
    if (np < hdr) return;
    const std::uint16_t addr = addr_of(p), len = len_of(p);
    seg_ids_.clear();
    seg_err_.clear();
    seg_data_.clear();
    for (std::size_t j = hdr; j < np; ++j) {
      const int k = bank_.index_of(p[j]);
      if (k < 0 || silent_[k]) continue;
      params_.assign(len, 0);
      const bool ok = bank_.read(k, addr, len, params_.data());
      if (inst == dxl2::kFastSyncRead) {
        seg_ids_.push_back(bank_.id(k));
        seg_err_.push_back(ok ? 0 : emu_err::kDataLength);
        seg_data_.insert(seg_data_.end(), params_.begin(), params_.end());
        continue;
      }
      status(k, ok ? 0 : emu_err::kDataLength, params_.data(), ok ? len : 0);
      queue(k, t_rx, out);
    }
    if (inst == dxl2::kFastSyncRead && !seg_ids_.empty()) {
      dxl2::fast_sync_status(seg_ids_.data(), seg_err_.data(), seg_data_.data(), seg_ids_.size(), len, scratch_);
      queue(static_cast<std::size_t>(bank_.index_of(seg_ids_[0])), t_rx, out);
    }
    return;
  }
  if (inst == dxl2::kSyncWrite) {  // same code in both protocols; never answered
    if (np < hdr) return;
    const std::uint16_t addr = addr_of(p), len = len_of(p);
    bool goal = false;
    for (std::size_t j = hdr; j + 1 + len <= np; j += 1 + len) {
      const int k = bank_.index_of(p[j]);
      if (k >= 0) bank_.host_write(k, addr, p + j + 1, len, goal);
    }
    if (goal) bank_.log_goals(t_rx);
    return;
  }
  const std::size_t first = broadcast ? 0 : static_cast<std::size_t>(std::max(bank_.index_of(v.id), 0));
  const std::size_t last = broadcast ? bank_.size() : (bank_.index_of(v.id) < 0 ? 0 : first + 1);
  bool goal = false;
  for (std::size_t k = first; k < last; ++k) {
    const bool answer = !silent_[k];
    if (inst == dxl2::kPing) {  // same code in both protocols; answered even to a broadcast
      if (!answer) continue;
      if (dxl_) {
        const std::uint16_t model = model_ ? static_cast<std::uint16_t>(bank_.get_raw(k, *model_)) : 0;
        const std::uint8_t info[3] = {static_cast<std::uint8_t>(model & 0xFF), static_cast<std::uint8_t>(model >> 8),
                                      static_cast<std::uint8_t>(firmware_ ? bank_.get_raw(k, *firmware_) : 0)};
        status(k, 0, info, 3);
      } else {
        status(k, 0, nullptr, 0);
      }
      queue(k, t_rx, out);
    } else if (inst == dxl2::kRead) {
      if (broadcast || !answer) continue;  // a broadcast READ has no meaning and is ignored
      if (np < hdr) {
        status(k, emu_err::kDataLength, nullptr, 0);
      } else {
        const std::uint16_t addr = addr_of(p), len = len_of(p);
        params_.assign(len, 0);
        if (bank_.read(k, addr, len, params_.data())) status(k, 0, params_.data(), len);
        else status(k, emu_err::kDataLength, nullptr, 0);
      }
      queue(k, t_rx, out);
    } else if (inst == dxl2::kWrite) {
      const std::size_t ah = dxl_ ? 2 : 1;
      const std::uint8_t err = np > ah ? bank_.host_write(k, addr_of(p), p + ah, np - ah, goal) : emu_err::kDataLength;
      if (!broadcast && answer && answers_writes(k)) {
        status(k, err, nullptr, 0);
        queue(k, t_rx, out);
      }
    } else if (dxl_ && inst == 0x08) {  // REBOOT: clears the hardware error, torque off
      if (hw_error_) bank_.set(k, *hw_error_, 0);
      bank_.set(k, bank_.require("torque_enable"), 0);
      if (!broadcast && answer) {
        status(k, 0, nullptr, 0);
        queue(k, t_rx, out);
      }
    } else if (!broadcast) {
      ++c_.unknown_instruction;
      if (answer) {
        status(k, emu_err::kInstruction, nullptr, 0);
        queue(k, t_rx, out);
      }
    }
  }
  if (goal) bank_.log_goals(t_rx);
}

}  // namespace rt
