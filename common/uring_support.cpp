#include "uring_support.hpp"

#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

namespace shootout {

namespace {

std::string flag_names(unsigned flags) {
  std::string names;
  auto add = [&](unsigned f, const char* name) {
    if (!(flags & f)) return;
    names += names.empty() ? " with " : " and ";
    names += name;
  };
  add(IORING_SETUP_SINGLE_ISSUER, "SINGLE_ISSUER");
  add(IORING_SETUP_DEFER_TASKRUN, "DEFER_TASKRUN");
  return names;
}

// A ring of two provided buffers registered and unregistered again.
std::string try_buffer_ring(io_uring& ring) {
  try {
    ProvidedBuffers buffers;
    buffers.set_up(ring, 2, 64, 0);
    io_uring_unregister_buf_ring(&ring, 0);
  } catch (const std::system_error& e) {
    // what() is already "registering the receive buffers: <the kernel's error>".
    return fmt::format("{} (a ring of provided buffers: Linux 5.19 has them)", e.what());
  }
  return "";
}

}  // namespace

std::string uring_unavailable_for(unsigned setup_flags, std::initializer_list<int> ops,
                                  bool buffer_ring) {
  std::ifstream disabled("/proc/sys/kernel/io_uring_disabled");
  int value = 0;
  if (disabled >> value && value == 2) return "io_uring is disabled (kernel.io_uring_disabled = 2)";
  io_uring ring;
  io_uring_params p{};
  p.flags = setup_flags;
  if (int r = io_uring_queue_init_params(8, &ring, &p); r < 0) {
    std::string why =
        fmt::format("io_uring_setup{}: {}", flag_names(setup_flags), std::strerror(-r));
    if (r == -EPERM) why += " (kernel.io_uring_disabled = 1, or a seccomp profile)";
    if (r == -EINVAL) why += " (the kernel is older than 6.1)";
    if (r == -ENOSYS) why += " (a kernel built without io_uring, or a seccomp profile)";
    return why;
  }
  std::string why;
  if (!(p.features & IORING_FEAT_EXT_ARG)) why = "the kernel lacks IORING_FEAT_EXT_ARG";
  if (io_uring_probe* pr = io_uring_get_probe_ring(&ring)) {
    for (int op : ops)
      if (why.empty() && !io_uring_opcode_supported(pr, op))
        why = fmt::format("the kernel's io_uring lacks opcode {}", op);
    io_uring_free_probe(pr);
  }
  if (why.empty() && buffer_ring) why = try_buffer_ring(ring);
  io_uring_queue_exit(&ring);
  return why;
}

int uring_enable_rings(io_uring& ring) {
  if (::syscall(__NR_io_uring_register, ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0) < 0)
    return -errno;
  return 0;
}

ProvidedBuffers::~ProvidedBuffers() {
  if (memory_) ::munmap(memory_, std::size_t{count_} * size_);
  if (ring_) ::munmap(ring_, std::size_t{count_} * sizeof(io_uring_buf));
}

void ProvidedBuffers::set_up(io_uring& ring, unsigned count, unsigned size, int group) {
  count_ = count;
  size_ = size;
  group_ = group;
  void* mem = ::mmap(nullptr, std::size_t{count} * sizeof(io_uring_buf), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap");
  ring_ = static_cast<io_uring_buf_ring*>(mem);
  mem = ::mmap(nullptr, std::size_t{count} * size, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap");
  memory_ = static_cast<char*>(mem);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uint64_t>(ring_);
  reg.ring_entries = count;
  reg.bgid = static_cast<std::uint16_t>(group);
  if (int r = io_uring_register_buf_ring(&ring, &reg, 0); r < 0)
    throw std::system_error(-r, std::generic_category(), "registering the receive buffers");
  io_uring_buf_ring_init(ring_);
}

void ProvidedBuffers::give_back(std::uint16_t id) {
  io_uring_buf_ring_add(ring_, data(id), size_, id, io_uring_buf_ring_mask(count_), unpublished_++);
}

void ProvidedBuffers::publish() {
  if (unpublished_ == 0) return;
  io_uring_buf_ring_advance(ring_, unpublished_);
  unpublished_ = 0;
}

}  // namespace shootout
