// Fuzz driver for the streaming decoders, run in C++ so a test can push >= 1e6 streams in
// seconds. Two stream kinds: pure random bytes (must not crash, hang or grow without bound) and
// valid status frames with some frames mutated (substitute / delete / insert / truncate): every
// untouched frame must come back intact and every mutated frame must raise the error counters.
#include <random>

#include "rt/servo_protocol.hpp"

namespace rt {
namespace {

struct Frame {
  std::uint8_t id, error;
  Bytes params;
};

std::uint8_t biased_byte(std::mt19937_64& rng) {
  static const std::uint8_t special[] = {0xFF, 0xFD, 0x00, 0xFE, 0x55};
  const auto r = rng();
  return (r & 3) == 0 ? special[(r >> 2) % 5] : static_cast<std::uint8_t>(r >> 8);
}

}  // namespace

FuzzReport fuzz_decoder(Protocol p, std::uint64_t streams, std::uint64_t seed) {
  const auto codec = Codec::make(p);
  std::mt19937_64 rng(seed);
  FuzzReport rep;
  Bytes stream, frame_bytes;
  std::vector<Frame> frames, decoded;
  std::vector<bool> mutated;
  const Decoder::Sink sink = [&decoded](const PacketView& v) {
    decoded.push_back(Frame{v.id, v.error, Bytes(v.params, v.params + v.size)});
  };

  for (std::uint64_t s = 0; s < streams; ++s) {
    auto dec = codec->decoder();
    stream.clear();
    decoded.clear();
    const bool random_stream = (rng() & 1) != 0;
    if (random_stream) {
      const std::size_t n = rng() % 300;
      for (std::size_t i = 0; i < n; ++i) stream.push_back(biased_byte(rng));
    } else {
      frames.clear();
      mutated.clear();
      const std::size_t nf = 1 + rng() % 6;
      for (std::size_t f = 0; f < nf; ++f) {
        Frame fr{static_cast<std::uint8_t>(rng() % 253), static_cast<std::uint8_t>(rng() % 4 == 0 ? rng() : 0), {}};
        const std::size_t np = rng() % 17;
        for (std::size_t i = 0; i < np; ++i) fr.params.push_back(biased_byte(rng));
        codec->status(fr.id, fr.error, fr.params.data(), fr.params.size(), frame_bytes);
        const bool mut = (f == 0 || !mutated.back()) && rng() % 10 < 3;
        if (mut) {
          const std::size_t pos = rng() % frame_bytes.size();
          switch (rng() % 4) {
            case 0: frame_bytes[pos] = static_cast<std::uint8_t>(frame_bytes[pos] + 1 + rng() % 255); break;
            case 1:  // deleting a final FF is the truncation case below
              if (pos + 1 == frame_bytes.size() && frame_bytes[pos] == 0xFF)
                frame_bytes[pos] = static_cast<std::uint8_t>(frame_bytes[pos] + 1 + rng() % 255);
              else
                frame_bytes.erase(frame_bytes.begin() + static_cast<std::ptrdiff_t>(pos));
              break;
            case 2:
              frame_bytes.insert(frame_bytes.begin() + static_cast<std::ptrdiff_t>(pos), biased_byte(rng));
              break;
            default:
              // Cutting a tail that starts with FF would let the next frame's header bytes stand in
              // for it: the frame arrives intact and the *next* one is the damaged one.
              if (pos == 0 || frame_bytes[pos] == 0xFF)
                frame_bytes[pos] = static_cast<std::uint8_t>(frame_bytes[pos] + 1 + rng() % 255);
              else
                frame_bytes.resize(pos);
              break;
          }
        }
        frames.push_back(std::move(fr));
        mutated.push_back(mut);
        stream.insert(stream.end(), frame_bytes.begin(), frame_bytes.end());
      }
    }
    // Leading line noise (never FF/FD) before an intact first frame; before a damaged one it would
    // merge with it into a single discarded run and hide the count being checked.
    if (!random_stream && !mutated[0]) {
      const std::size_t lead = rng() % 4;
      for (std::size_t i = 0; i < lead; ++i) stream.insert(stream.begin(), static_cast<std::uint8_t>(rng() % 0xF0));
    }
    // Feed in random chunks, as a UART/USB adapter delivers them, then declare the line idle.
    std::size_t off = 0;
    while (off < stream.size()) {
      const std::size_t k = std::min<std::size_t>(1 + rng() % 64, stream.size() - off);
      dec->feed(stream.data() + off, k, sink);
      off += k;
    }
    dec->drain(sink);
    rep.streams++;
    rep.bytes += stream.size();
    if (random_stream) {
      rep.random_frames += decoded.size();
      continue;
    }
    std::size_t n_mut = 0, j = 0;
    for (std::size_t f = 0; f < frames.size(); ++f) n_mut += mutated[f];
    rep.frames_sent += frames.size();
    rep.mutated_frames += n_mut;
    rep.unmutated_frames += frames.size() - n_mut;
    // Every unmutated frame must appear, intact and in order, among the decoded ones.
    for (const Frame& d : decoded) {
      while (j < frames.size() && mutated[j]) ++j;
      if (j < frames.size() && d.id == frames[j].id && d.error == frames[j].error && d.params == frames[j].params)
        ++j, ++rep.recovered;
    }
    rep.missed = rep.unmutated_frames - rep.recovered;
    const std::uint64_t ev = dec->counters().errors();
    rep.error_events += ev;
    if (ev < n_mut) ++rep.streams_short_counted;
  }
  return rep;
}

}  // namespace rt
