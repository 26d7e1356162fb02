// Feetech STS/SCS serial servo codec (Feetech "SCS/STS communication protocol" manual: FF FF ID
// LEN INST PARAMS CHECKSUM, LEN = params + 2, checksum = ~(ID + LEN + INST + params) & 0xFF;
// STS registers are little-endian, SCS big-endian).
#include <cstring>
#include <stdexcept>

#include "rt/servo_protocol.hpp"

namespace rt {
namespace feetech {

std::uint8_t checksum(const std::uint8_t* data, std::size_t n) {
  unsigned sum = 0;
  for (std::size_t i = 0; i < n; ++i) sum += data[i];
  return static_cast<std::uint8_t>(~sum & 0xFF);
}

void encode(std::uint8_t id, std::uint8_t instr, const std::uint8_t* params, std::size_t n, Bytes& out) {
  if (n + 2 > 0xFF) throw std::invalid_argument("feetech packet too long");
  out.clear();
  out.insert(out.end(), {0xFF, 0xFF, id, static_cast<std::uint8_t>(n + 2), instr});
  out.insert(out.end(), params, params + n);
  out.push_back(checksum(out.data() + 2, out.size() - 2));
}

namespace {

std::uint8_t addr8(std::uint16_t addr) {
  if (addr > 0xFF) throw std::invalid_argument("feetech address > 255");
  return static_cast<std::uint8_t>(addr);
}
std::uint8_t len8(std::size_t len) {
  if (len > 0xFF) throw std::invalid_argument("feetech data length > 255");
  return static_cast<std::uint8_t>(len);
}

class FeetechDecoder final : public Decoder {
 protected:
  std::size_t parse(const Sink& sink, bool draining) override {
    std::size_t delivered = 0;
    for (;;) {
      const std::uint8_t* b = buf_.data() + head_;
      const std::size_t avail = buf_.size() - head_;
      // Header FF FF followed by a non-FF id (FF FF FF is a header preceded by a stray FF).
      std::size_t i = 0;
      while (i + 2 < avail && !(b[i] == 0xFF && b[i + 1] == 0xFF && b[i + 2] != 0xFF)) {
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
      if (buf_.size() - head_ < 4) {
        if (draining) { reject(counters_.bad_frames); continue; }
        break;
      }
      const std::size_t len = b[3];
      if (len < 2) { reject(counters_.bad_frames); continue; }
      const std::size_t total = 4 + len;
      if (buf_.size() - head_ < total) {
        if (draining) { reject(counters_.bad_frames); continue; }
        break;
      }
      if (checksum(b + 2, total - 3) != b[total - 1]) { reject(counters_.crc_errors); continue; }
      scratch_.assign(b + 5, b + total - 1);
      PacketView v;
      v.id = b[2];
      v.instr = v.error = b[4];
      v.params = scratch_.data();
      v.size = scratch_.size();
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

class FeetechCodec final : public Codec {
 public:
  explicit FeetechCodec(bool little) : little_(little) {}
  void ping(std::uint8_t id, Bytes& out) const override { encode(id, kPing, nullptr, 0, out); }
  void read(std::uint8_t id, std::uint16_t addr, std::uint16_t len, Bytes& out) const override {
    const std::uint8_t p[2] = {addr8(addr), len8(len)};
    encode(id, kRead, p, 2, out);
  }
  void write(std::uint8_t id, std::uint16_t addr, const std::uint8_t* data, std::size_t len,
             Bytes& out) const override {
    Bytes p{addr8(addr)};
    p.insert(p.end(), data, data + len);
    encode(id, kWrite, p.data(), p.size(), out);
  }
  void sync_read(std::uint16_t addr, std::uint16_t len, const std::uint8_t* ids, std::size_t n,
                 Bytes& out) const override {
    Bytes p{addr8(addr), len8(len)};
    p.insert(p.end(), ids, ids + n);
    encode(kBroadcast, kSyncRead, p.data(), p.size(), out);
  }
  void sync_write(std::uint16_t addr, std::uint16_t len, const std::uint8_t* ids, std::size_t n,
                  const std::uint8_t* data, Bytes& out) const override {
    Bytes p{addr8(addr), len8(len)};
    for (std::size_t k = 0; k < n; ++k) {
      p.push_back(ids[k]);
      p.insert(p.end(), data + k * len, data + (k + 1) * len);
    }
    encode(kBroadcast, kSyncWrite, p.data(), p.size(), out);
  }
  void status(std::uint8_t id, std::uint8_t error, const std::uint8_t* params, std::size_t n,
              Bytes& out) const override {
    encode(id, error, params, n, out);
  }
  std::unique_ptr<Decoder> decoder() const override { return std::make_unique<FeetechDecoder>(); }
  bool little_endian() const override { return little_; }
  std::string describe_error(std::uint8_t e) const override {
    static const char* names[] = {"input voltage", "angle sensor", "overheat", "overcurrent",
                                  "bit4",          "overload",     "bit6",     "bit7"};
    std::string s;
    for (int b = 0; b < 8; ++b)
      if (e & (1u << b)) s += (s.empty() ? "" : " + ") + std::string(names[b]);
    return s;
  }
  std::size_t status_size(std::size_t n) const override { return 6 + n; }

 private:
  bool little_;
};

}  // namespace
}  // namespace feetech

std::unique_ptr<Codec> make_dxl2_codec();

std::unique_ptr<Codec> Codec::make(Protocol p) {
  switch (p) {
    case Protocol::Dynamixel2: return make_dxl2_codec();
    case Protocol::FeetechSTS: return std::make_unique<feetech::FeetechCodec>(true);
    case Protocol::FeetechSCS: return std::make_unique<feetech::FeetechCodec>(false);
  }
  throw std::invalid_argument("unknown protocol");
}

Protocol parse_protocol(const std::string& name) {
  if (name == "dynamixel2") return Protocol::Dynamixel2;
  if (name == "feetech" || name == "feetech_sts") return Protocol::FeetechSTS;
  if (name == "feetech_scs") return Protocol::FeetechSCS;
  throw std::invalid_argument("unknown servo protocol '" + name + "' (expected dynamixel2, feetech, feetech_scs)");
}

}  // namespace rt
