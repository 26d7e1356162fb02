#include "rt/serial_port.hpp"

#include <fcntl.h>
#include <linux/serial.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <time.h>

namespace rt {

std::int64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

namespace {

speed_t standard_speed(int baud) {
  switch (baud) {
    case 9600: return B9600;
    case 19200: return B19200;
    case 38400: return B38400;
    case 57600: return B57600;
    case 115200: return B115200;
    case 230400: return B230400;
    case 460800: return B460800;
    case 500000: return B500000;
    case 576000: return B576000;
    case 921600: return B921600;
    case 1000000: return B1000000;
    case 1152000: return B1152000;
    case 1500000: return B1500000;
    case 2000000: return B2000000;
    case 2500000: return B2500000;
    case 3000000: return B3000000;
    case 3500000: return B3500000;
    case 4000000: return B4000000;
    default: return 0;
  }
}

// Waits for `events` on fd until the deadline; ppoll for sub-millisecond resolution.
IoStatus wait_fd(int fd, short events, std::int64_t deadline_ns, std::string& err) {
  for (;;) {
    const std::int64_t left = deadline_ns - monotonic_ns();
    if (left <= 0) return IoStatus::Timeout;
    timespec ts{static_cast<time_t>(left / 1000000000LL), static_cast<long>(left % 1000000000LL)};
    pollfd p{fd, events, 0};
    const int r = ppoll(&p, 1, &ts, nullptr);
    if (r < 0) {
      if (errno == EINTR) continue;
      err = std::strerror(errno);
      return IoStatus::Error;
    }
    if (r == 0) return IoStatus::Timeout;
    if (p.revents & events) return IoStatus::Ok;
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) {
      err = (p.revents & POLLNVAL) ? "port closed" : "port hung up";
      return IoStatus::Error;
    }
  }
}

}  // namespace

SerialPort::SerialPort(const std::string& path, int baud) : path_(path), baud_(baud) {
  if (baud <= 0) throw std::invalid_argument("serial: baud must be > 0");
  fd_ = ::open(path.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (fd_ < 0) throw std::runtime_error("serial: cannot open " + path + ": " + std::strerror(errno));
  termios tio;
  if (tcgetattr(fd_, &tio) != 0) {
    const std::string e = std::strerror(errno);
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error("serial: " + path + " is not a tty: " + e);
  }
  cfmakeraw(&tio);
  tio.c_cflag |= CLOCAL | CREAD;
  tio.c_cflag &= ~(CSTOPB | PARENB | CRTSCTS);
  tio.c_iflag &= ~(IXON | IXOFF | IXANY);
  tio.c_cc[VMIN] = 0;
  tio.c_cc[VTIME] = 0;
  const speed_t sp = standard_speed(baud);
  if (sp) {
    cfsetispeed(&tio, sp);
    cfsetospeed(&tio, sp);
  }
  if (tcsetattr(fd_, TCSANOW, &tio) != 0) {
    const std::string e = std::strerror(errno);
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error("serial: cannot configure " + path + ": " + e);
  }
  if (!sp) {
    const int e = set_custom_baud(fd_, baud);
    if (e != 0) {
      ::close(fd_);
      fd_ = -1;
      throw std::runtime_error("serial: baud " + std::to_string(baud) + " not supported on " + path + ": " +
                               std::strerror(e));
    }
    custom_baud_ = true;
  }
  serial_struct ss;
  if (ioctl(fd_, TIOCGSERIAL, &ss) == 0) {
    ss.flags |= ASYNC_LOW_LATENCY;
    low_latency_ = ioctl(fd_, TIOCSSERIAL, &ss) == 0;
  }
  tcflush(fd_, TCIOFLUSH);
}

SerialPort::~SerialPort() { close(); }

void SerialPort::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

IoStatus SerialPort::write_all(const std::uint8_t* data, std::size_t n, std::int64_t deadline_ns) {
  if (fd_ < 0) {
    last_error_ = "port closed";
    return IoStatus::Error;
  }
  std::size_t off = 0;
  while (off < n) {
    const ssize_t w = ::write(fd_, data + off, n - off);
    if (w > 0) {
      off += static_cast<std::size_t>(w);
      continue;
    }
    if (w < 0 && errno != EAGAIN && errno != EINTR) {
      last_error_ = std::strerror(errno);
      return IoStatus::Error;
    }
    const IoStatus s = wait_fd(fd_, POLLOUT, deadline_ns, last_error_);
    if (s != IoStatus::Ok) return s;
  }
  return IoStatus::Ok;
}

IoStatus SerialPort::read_some(std::uint8_t* buf, std::size_t cap, std::size_t& got, std::int64_t deadline_ns) {
  got = 0;
  if (fd_ < 0) {
    last_error_ = "port closed";
    return IoStatus::Error;
  }
  bool polled_ready = false;
  for (;;) {
    const ssize_t r = ::read(fd_, buf, cap);
    if (r > 0) {
      got = static_cast<std::size_t>(r);
      return IoStatus::Ok;
    }
    if (r == 0) {
      // With VMIN=0 a 0-byte read means "nothing yet", unless poll just said readable: then it is
      // end-of-file, i.e. the device (or the pty's other end) is gone.
      if (polled_ready) {
        last_error_ = "port hung up";
        return IoStatus::Error;
      }
    } else if (errno != EAGAIN && errno != EINTR) {
      last_error_ = std::strerror(errno);  // EIO: the other end of a pty went away, USB unplugged
      return IoStatus::Error;
    }
    const IoStatus s = wait_fd(fd_, POLLIN, deadline_ns, last_error_);
    if (s != IoStatus::Ok) return s;
    polled_ready = true;
  }
}

void SerialPort::flush_input() {
  if (fd_ >= 0) tcflush(fd_, TCIFLUSH);
}

void SerialPort::drain_output() {
  if (fd_ >= 0) tcdrain(fd_);
}

}  // namespace rt
