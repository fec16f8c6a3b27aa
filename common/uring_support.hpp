#pragma once
// What every io_uring user of the project shares: whether this process may use io_uring at all
// (and if not, one line saying why), and enabling a ring that was set up disabled. Used by the
// uring server model (models/uring/loop.hpp) and the load generator's uring engine
// (loadgen/uring_engine.hpp); each asks for the set-up flags and operations it needs.
//
// Threads: any. uring_unavailable_for() sets up and tears down a small ring of its own; callers
// probe once and remember the answer.
#include <liburing.h>

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

}  // namespace shootout
