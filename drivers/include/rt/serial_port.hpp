// Serial transport for servo buses: raw termios, arbitrary baud, poll deadlines.
//
// Raw mode because cooked mode rewrites CR/LF and eats 0x03/0x1A in binary packets; ppoll()
// deadlines with microsecond resolution because VTIME's 100 ms tick is useless at 1 kHz; termios2
// BOTHER because 1-4 Mbaud are not in the Bxxx table; ASYNC_LOW_LATENCY because FTDI adapters
// otherwise hold bytes for their 16 ms latency timer. Works on a pty (baud is ignored there).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace rt {

std::int64_t monotonic_ns();

enum class IoStatus { Ok = 0, Timeout = 1, Error = 2 };

class SerialPort {
 public:
  SerialPort(const std::string& path, int baud);  // throws std::runtime_error with the reason
  ~SerialPort();
  SerialPort(const SerialPort&) = delete;
  SerialPort& operator=(const SerialPort&) = delete;

  // Writes everything before deadline_ns (CLOCK_MONOTONIC).
  IoStatus write_all(const std::uint8_t* data, std::size_t n, std::int64_t deadline_ns);
  // Waits until at least one byte is readable or the deadline passes; reads what is there.
  IoStatus read_some(std::uint8_t* buf, std::size_t cap, std::size_t& got, std::int64_t deadline_ns);
  void flush_input();
  void drain_output();
  void close();

  int fd() const { return fd_; }
  int baud() const { return baud_; }
  bool low_latency() const { return low_latency_; }
  bool custom_baud() const { return custom_baud_; }
  const std::string& path() const { return path_; }
  const std::string& last_error() const { return last_error_; }

 private:
  std::string path_;
  int fd_ = -1;
  int baud_ = 0;
  bool low_latency_ = false, custom_baud_ = false;
  std::string last_error_;
};

// Sets an arbitrary baud rate with termios2/BOTHER (in its own translation unit: asm/termbits.h
// clashes with termios.h). Returns 0 or errno.
int set_custom_baud(int fd, int baud);

}  // namespace rt
