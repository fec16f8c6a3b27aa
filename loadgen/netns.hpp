#pragma once
// Network namespaces for the load generator: `shootout load --netns NAME` makes a rank's
// connections inside a namespace (docs/LOADGEN.md, "Several hosts on one machine"), and the
// sampler counts a server's sockets inside the server's own namespace.
//
// setns(CLONE_NEWNET) moves only the calling thread, and a socket stays in the namespace it was
// created in. So the load generator enters a namespace on the threads that open its connections
// (its workers), never on the main thread, whose MPI connections must stay where mpirun reaches
// them. Entering needs CAP_SYS_ADMIN.
//
// Threads: a NetNamespace is immutable once opened; any thread may call enter() or inside().
// It owns its descriptor (closed by the destructor).
#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <utility>

namespace shootout::load {

class NetNamespace {
 public:
  // NAME (a namespace of `ip netns add NAME`: /run/netns/NAME) or a path (/proc/PID/ns/net).
  // Throws LoadError if it cannot be opened or is not a network namespace.
  static NetNamespace open(const std::string& name_or_path);
  // The network namespace of process `pid` if it is not the calling thread's; nullopt when it
  // is the same one or cannot be read (the process is gone, or no permission).
  static std::optional<NetNamespace> of_process_if_other(pid_t pid);

  NetNamespace(NetNamespace&& other) noexcept;
  NetNamespace& operator=(NetNamespace&&) = delete;
  NetNamespace(const NetNamespace&) = delete;
  ~NetNamespace();

  // Moves the calling thread into the namespace. Returns "" or why it could not (errno's text).
  std::string enter() const;
  // Runs `fn` on a thread of its own inside the namespace and waits for it; the caller's
  // thread stays where it is. Throws LoadError if the thread cannot enter; rethrows what `fn`
  // throws.
  void inside(const std::function<void()>& fn) const;
  const std::string& name() const { return name_; }

 private:
  NetNamespace(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  std::string enter_test() const;  // enter() on a thread of its own: can this namespace be entered?
  int fd_ = -1;
  std::string name_;
};

}  // namespace shootout::load
