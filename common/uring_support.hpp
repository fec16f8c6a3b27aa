#pragma once
// What every io_uring user of the project shares: whether this process may use io_uring at all
// (and if not, one line saying why), and enabling a ring that was set up disabled. Used by the
// uring server model (models/uring/loop.hpp) and the load generator's uring engine
// (loadgen/uring_engine.hpp); each asks for the set-up flags and operations it needs.
//
// Threads: any. uring_unavailable_for() sets up and tears down a small ring of its own; callers
// probe once and remember the answer.
#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

namespace shootout {

// Empty if a ring with `setup_flags` can be set up here and supports every operation of `ops`
// (IORING_OP_*) and IORING_FEAT_EXT_ARG (a wait with a timeout in the enter itself); else why not,
// in one line: "io_uring is disabled (kernel.io_uring_disabled = 2)", "io_uring_setup with
// SINGLE_ISSUER and DEFER_TASKRUN: Function not implemented (a kernel built without io_uring, or
// a seccomp profile)", "the kernel's io_uring lacks opcode 16". With `buffer_ring`, registering a
// ring of provided buffers (Linux 5.19) must work too.
std::string uring_unavailable_for(unsigned setup_flags, std::initializer_list<int> ops,
                                  bool buffer_ring = false);

// Enables a ring set up with IORING_SETUP_R_DISABLED; the calling thread becomes its submitter
// (what IORING_SETUP_SINGLE_ISSUER checks). Returns 0 or -errno. io_uring_enable_rings() is
// declared by liburing 2.3 but missing from its library (fixed in 2.4), so this makes the system
// call itself.
int uring_enable_rings(io_uring& ring);

// A ring of provided receive buffers (IORING_REGISTER_PBUF_RING, liburing 2.3's
// io_uring_register_buf_ring): `count` buffers of `size` bytes in buffer group `group`, shared
// by every receive of one io_uring that names the group (multishot recv picks one per
// completion, and IORING_CQE_F_BUFFER gives its id). The buffers' memory is MAP_NORESERVE: a
// page costs only once the kernel has written into it.
//
// Returning buffers is batched: give_back() writes the entry, publish() makes every entry
// written since visible to the kernel in one tail update (before the next enter).
//
// Threads: the ring's submitter only (no locks). Owner: whoever owns the io_uring; destroy this
// after io_uring_queue_exit() (the kernel must let go of the buffers before their memory goes).
class ProvidedBuffers {
 public:
  ProvidedBuffers() = default;
  ~ProvidedBuffers();
  ProvidedBuffers(const ProvidedBuffers&) = delete;
  ProvidedBuffers& operator=(const ProvidedBuffers&) = delete;

  // Maps the memory and registers the ring with `ring`, empty (no buffer in it yet). Throws
  // std::system_error ("registering the receive buffers", with the kernel's errno). count is a
  // power of two, at most 32,768.
  void set_up(io_uring& ring, unsigned count, unsigned size, int group);

  char* data(std::uint16_t id) const { return memory_ + std::size_t{id} * size_; }
  unsigned count() const { return count_; }
  unsigned size() const { return size_; }
  int group() const { return group_; }

  // Buffer `id` (back) into the ring; the kernel sees it after publish().
  void give_back(std::uint16_t id);
  // Every buffer given back since the last publish() becomes visible to the kernel.
  void publish();

 private:
  io_uring_buf_ring* ring_ = nullptr;  // the entries (mmap'd)
  char* memory_ = nullptr;             // count_ buffers of size_ (mmap'd)
  unsigned count_ = 0, size_ = 0;
  int group_ = 0;
  int unpublished_ = 0;  // entries written since the last publish()
};

}  // namespace shootout
