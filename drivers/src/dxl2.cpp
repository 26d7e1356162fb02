// Dynamixel Protocol 2.0 codec (ROBOTIS e-Manual, "DYNAMIXEL Protocol 2.0": packet layout,
// CRC-16 polynomial 0x8005, byte stuffing of FF FF FD -> FF FF FD FD inside INST..PARAMS).
#include <array>
#include <cstring>
#include <stdexcept>

#include "rt/servo_protocol.hpp"

namespace rt {
namespace dxl2 {
namespace {

constexpr std::array<std::uint16_t, 256> make_table() {
  std::array<std::uint16_t, 256> t{};
  for (unsigned i = 0; i < 256; ++i) {
    std::uint16_t r = static_cast<std::uint16_t>(i << 8);
    for (int b = 0; b < 8; ++b) r = static_cast<std::uint16_t>((r & 0x8000) ? (r << 1) ^ 0x8005 : (r << 1));
    t[i] = r;
  }
  return t;
}
constexpr auto kTable = make_table();

inline std::uint8_t lo(std::size_t v) { return static_cast<std::uint8_t>(v & 0xFF); }
inline std::uint8_t hi(std::size_t v) { return static_cast<std::uint8_t>((v >> 8) & 0xFF); }

}  // namespace

std::uint16_t crc16(std::uint16_t crc, const std::uint8_t* data, std::size_t n) {
  for (std::size_t j = 0; j < n; ++j)
    crc = static_cast<std::uint16_t>((crc << 8) ^ kTable[((crc >> 8) ^ data[j]) & 0xFF]);
  return crc;
}

void encode(std::uint8_t id, std::uint8_t instr, const std::uint8_t* params, std::size_t n, Bytes& out) {
  const std::size_t raw_len = n + 3;  // INST + params + CRC
  out.clear();
  out.insert(out.end(), {0xFF, 0xFF, 0xFD, 0x00, id, lo(raw_len), hi(raw_len), instr});
  // Stuffing looks back at the unstuffed bytes, starting with the (unstuffed) length bytes,
  // exactly as the reference implementation does, so encoders agree byte for byte.
  std::uint8_t prev2 = hi(raw_len), prev1 = instr;
  if (instr == 0xFD && lo(raw_len) == 0xFF && hi(raw_len) == 0xFF) out.push_back(0xFD);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t b = params[i];
    out.push_back(b);
    if (b == 0xFD && prev1 == 0xFF && prev2 == 0xFF) out.push_back(0xFD);
    prev2 = prev1;
    prev1 = b;
  }
  const std::size_t len = out.size() - 7 + 2;
  if (len > 0xFFFF) throw std::invalid_argument("dynamixel packet too long");
  out[5] = lo(len);
  out[6] = hi(len);
  const std::uint16_t crc = crc16(0, out.data(), out.size());
  out.push_back(lo(crc));
  out.push_back(hi(crc));
}

void fast_sync_read(std::uint16_t addr, std::uint16_t len, const std::uint8_t* ids, std::size_t n, Bytes& out) {
  Bytes p{lo(addr), hi(addr), lo(len), hi(len)};
  p.insert(p.end(), ids, ids + n);
  encode(kBroadcast, kFastSyncRead, p.data(), p.size(), out);
}

void fast_sync_status(const std::uint8_t* ids, const std::uint8_t* errors, const std::uint8_t* data,
                      std::size_t n, std::uint16_t len, Bytes& out) {
  // Each servo appends [error, id, data] and, except the last, the running CRC of the packet so
  // far; the last servo's CRC is the packet CRC. Built unstuffed, then stuffed by encode().
  Bytes params;
  Bytes so_far{0xFF, 0xFF, 0xFD, 0x00, kBroadcast, 0, 0, kStatus};
  const std::size_t total_len = 1 + n * (len + 4) - 2 + 2;
  so_far[5] = lo(total_len);
  so_far[6] = hi(total_len);
  for (std::size_t k = 0; k < n; ++k) {
    const std::uint8_t seg_head[2] = {errors[k], ids[k]};
    params.insert(params.end(), seg_head, seg_head + 2);
    params.insert(params.end(), data + k * len, data + (k + 1) * len);
    if (k + 1 < n) {
      Bytes tmp = so_far;
      tmp.insert(tmp.end(), params.begin(), params.end());
      const std::uint16_t c = crc16(0, tmp.data(), tmp.size());
      params.push_back(lo(c));
      params.push_back(hi(c));
    }
  }
  encode(kBroadcast, kStatus, params.data(), params.size(), out);
}

bool split_fast_sync(const PacketView& p, std::size_t n, std::uint16_t len,
                     const std::function<void(std::uint8_t, std::uint8_t, const std::uint8_t*)>& seg) {
  // PacketView of a status: error = first servo's error, params start at its id.
  if (n == 0 || p.size + 1 != n * (len + 4) - 2) return false;
  const std::uint8_t* b = p.params - 1;  // back to the first error byte
  for (std::size_t k = 0; k < n; ++k) {
    const std::uint8_t* s = b + k * (len + 4);
    seg(s[1], s[0], s + 2);
  }
  return true;
}

namespace {

class Dxl2Decoder final : public Decoder {
 protected:
  std::size_t parse(const Sink& sink, bool draining) override {
    std::size_t delivered = 0;
    for (;;) {
      const std::uint8_t* b = buf_.data() + head_;
      const std::size_t avail = buf_.size() - head_;
      // Hunt for FF FF FD, keeping a trailing partial header.
      std::size_t i = 0;
      while (i + 2 < avail && !(b[i] == 0xFF && b[i + 1] == 0xFF && b[i + 2] == 0xFD)) {
        const void* ff = std::memchr(b + i + 1, 0xFF, avail - i - 1);
        i = ff ? static_cast<std::size_t>(static_cast<const std::uint8_t*>(ff) - b) : avail;
      }
      if (i + 2 >= avail) {
        std::size_t keep = 0;
        if (avail >= 1 && b[avail - 1] == 0xFF) keep = (avail >= 2 && b[avail - 2] == 0xFF) ? 2 : 1;
        if (draining) keep = 0;
        discard(avail - std::min(keep, avail));
        break;
      }
      discard(i);
      b = buf_.data() + head_;
      if (buf_.size() - head_ < 7) {
        if (draining) { reject(counters_.bad_frames); continue; }
        break;
      }
      const std::size_t len = b[5] | (b[6] << 8);
      if (b[3] != 0x00 || len < 3 || len > kMaxLength) { reject(counters_.bad_frames); continue; }
      const std::size_t total = 7 + len;
      if (buf_.size() - head_ < total) {
        if (draining) { reject(counters_.bad_frames); continue; }
        break;
      }
      const std::uint16_t want = static_cast<std::uint16_t>(b[total - 2] | (b[total - 1] << 8));
      if (crc16(0, b, total - 2) != want) { reject(counters_.crc_errors); continue; }
      // Unstuff INST..PARAMS: drop the FD of every FF FF FD FD.
      scratch_.clear();
      for (std::size_t p = 7; p < total - 2; ++p) {
        if (b[p] == 0xFD && p + 1 < total - 2 && b[p + 1] == 0xFD && b[p - 1] == 0xFF && b[p - 2] == 0xFF) continue;
        scratch_.push_back(b[p]);
      }
      PacketView v;
      v.id = b[4];
      v.instr = scratch_[0];
      if (v.instr == kStatus) {
        if (scratch_.size() < 2) { reject(counters_.bad_frames); continue; }
        v.error = scratch_[1];
        v.params = scratch_.data() + 2;
        v.size = scratch_.size() - 2;
      } else {
        v.params = scratch_.data() + 1;
        v.size = scratch_.size() - 1;
      }
      accept(total);
      ++delivered;
      sink(v);
    }
    compact();
    return delivered;
  }

 private:
  Bytes scratch_;
};

class Dxl2Codec final : public Codec {
 public:
  void ping(std::uint8_t id, Bytes& out) const override { encode(id, kPing, nullptr, 0, out); }
  void read(std::uint8_t id, std::uint16_t addr, std::uint16_t len, Bytes& out) const override {
    const std::uint8_t p[4] = {lo(addr), hi(addr), lo(len), hi(len)};
    encode(id, kRead, p, 4, out);
  }
  void write(std::uint8_t id, std::uint16_t addr, const std::uint8_t* data, std::size_t len,
             Bytes& out) const override {
    Bytes p{lo(addr), hi(addr)};
    p.insert(p.end(), data, data + len);
    encode(id, kWrite, p.data(), p.size(), out);
  }
  void sync_read(std::uint16_t addr, std::uint16_t len, const std::uint8_t* ids, std::size_t n,
                 Bytes& out) const override {
    Bytes p{lo(addr), hi(addr), lo(len), hi(len)};
    p.insert(p.end(), ids, ids + n);
    encode(kBroadcast, kSyncRead, p.data(), p.size(), out);
  }
  void sync_write(std::uint16_t addr, std::uint16_t len, const std::uint8_t* ids, std::size_t n,
                  const std::uint8_t* data, Bytes& out) const override {
    Bytes p{lo(addr), hi(addr), lo(len), hi(len)};
    for (std::size_t k = 0; k < n; ++k) {
      p.push_back(ids[k]);
      p.insert(p.end(), data + k * len, data + (k + 1) * len);
    }
    encode(kBroadcast, kSyncWrite, p.data(), p.size(), out);
  }
  void status(std::uint8_t id, std::uint8_t error, const std::uint8_t* params, std::size_t n,
              Bytes& out) const override {
    Bytes p{error};
    p.insert(p.end(), params, params + n);
    encode(id, kStatus, p.data(), p.size(), out);
  }
  std::unique_ptr<Decoder> decoder() const override { return std::make_unique<Dxl2Decoder>(); }
  std::string describe_error(std::uint8_t e) const override {
    static const char* names[] = {"",           "result fail",       "instruction error", "CRC error",
                                  "data range", "data length error", "data limit error",  "access error"};
    std::string s = (e & 0x7F) < 8 ? names[e & 0x7F] : "unknown error " + std::to_string(e & 0x7F);
    if (e & 0x80) s += s.empty() ? "hardware alert" : " + hardware alert";
    return s;
  }
  std::size_t status_size(std::size_t n) const override { return 11 + n; }
};

}  // namespace

}  // namespace dxl2

std::unique_ptr<Codec> make_dxl2_codec() { return std::make_unique<dxl2::Dxl2Codec>(); }

}  // namespace rt
