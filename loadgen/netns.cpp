#include "netns.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <thread>
#include <utility>

#include "load.hpp"

namespace shootout::load {
namespace {

std::string path_of(const std::string& name_or_path) {
  return name_or_path.find('/') == std::string::npos ? "/run/netns/" + name_or_path : name_or_path;
}

// The namespace's identity: the inode of its nsfs file (0 if it cannot be read).
ino_t inode_of(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

}  // namespace

NetNamespace NetNamespace::open(const std::string& name_or_path) {
  const std::string path = path_of(name_or_path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    throw LoadError(fmt::format("--netns {}: cannot open {}: {}{}", name_or_path, path,
                                std::strerror(e),
                                e == ENOENT ? " (make it with: ip netns add NAME)" : ""));
  }
  // The kernel checks the type at setns(); asking here gives the error before any load starts.
  NetNamespace ns(fd, name_or_path);
  if (std::string why = ns.enter_test(); !why.empty())
    throw LoadError(fmt::format("--netns {}: {}", name_or_path, why));
  return ns;
}

std::optional<NetNamespace> NetNamespace::of_process_if_other(pid_t pid) {
  const std::string path = fmt::format("/proc/{}/ns/net", pid);
  const ino_t theirs = inode_of(path);
  if (theirs == 0 || theirs == inode_of("/proc/thread-self/ns/net")) return std::nullopt;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  return NetNamespace(fd, path);
}

NetNamespace::NetNamespace(NetNamespace&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), name_(std::move(other.name_)) {}

NetNamespace::~NetNamespace() {
  if (fd_ >= 0) ::close(fd_);
}

std::string NetNamespace::enter() const {
  if (::setns(fd_, CLONE_NEWNET) == 0) return "";
  const int e = errno;
  if (e == EINVAL) return "not a network namespace";
  return fmt::format("cannot enter: {}{}", std::strerror(e),
                     e == EPERM ? " (entering a network namespace needs CAP_SYS_ADMIN)" : "");
}

std::string NetNamespace::enter_test() const {
  std::string why;
  std::thread([&] { why = enter(); }).join();
  return why;
}

void NetNamespace::inside(const std::function<void()>& fn) const {
  std::string why;
  std::exception_ptr failed;
  std::thread([&] {
    why = enter();
    if (!why.empty()) return;
    try {
      fn();
    } catch (...) {
      failed = std::current_exception();
    }
  }).join();
  if (!why.empty()) throw LoadError(fmt::format("--netns {}: {}", name_, why));
  if (failed) std::rethrow_exception(failed);
}

}  // namespace shootout::load
