// Blocking work done on the calling thread: what "inline" means for every model.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>

#include "handler.hpp"

namespace shootout {

namespace {

void burn_cpu(std::chrono::microseconds amount) {
  // Spin on the thread's own CPU clock, so time spent preempted does not count as work done.
  timespec start{}, now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &start);
  const long long want = amount.count() * 1000;
  volatile std::uint64_t sink = 0;
  do {
    for (int i = 0; i < 256; ++i) sink = sink * 6364136223846793005ull + 1442695040888963407ull;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  } while ((now.tv_sec - start.tv_sec) * 1'000'000'000LL + (now.tv_nsec - start.tv_nsec) < want);
}

WorkResult read_file(const std::string& path, std::uint64_t limit) {
  WorkResult r;
  // O_NOFOLLOW: a symlink planted in the served directory cannot point outside it.
  // O_NONBLOCK: opening a FIFO without a writer would otherwise block this thread forever (in
  // the coroutine model, every fiber of its scheduler with it); non-blocking, the open returns
  // at once and fstat turns it away. O_NOCTTY: a terminal device must not become ours.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    // A socket (ENXIO) or a device without a driver (ENODEV, ENXIO): there is something by that
    // name, and it is not a file we serve. The handler answers EINVAL with 403, as for a FIFO.
    r.error = (errno == ENXIO || errno == ENODEV) ? EINVAL : errno;
    return r;
  }
  // Only a regular file is served: a FIFO, a socket or a device is 403 (EINVAL) before any byte
  // of it is read, a directory 403 (EISDIR).
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    r.error = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
    ::close(fd);
    return r;
  }
  // O_NONBLOCK was for the open: the reads of a regular file stay the plain blocking reads.
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  if (static_cast<std::uint64_t>(st.st_size) > limit) {
    r.error = EFBIG;
    ::close(fd);
    return r;
  }
  r.data.resize(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < r.data.size()) {
    ssize_t n = ::read(fd, r.data.data() + got, r.data.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  r.data.resize(got);  // a file that shrank while we read it
  ::close(fd);
  return r;
}

}  // namespace

WorkResult run_work_inline(const Work& work) {
  switch (work.kind) {
    case Work::Kind::sleep:
      std::this_thread::sleep_for(work.amount);
      return {};
    case Work::Kind::cpu:
      burn_cpu(work.amount);
      return {};
    case Work::Kind::file:
      return read_file(work.path, work.limit);
  }
  return {};
}

Next Session::on_resume(std::string&) { return Next::read; }
Next Session::on_work_done(WorkResult, std::string&) { return Next::close; }
const Work& Session::pending_work() const {
  static const Work none{};
  return none;
}

}  // namespace shootout
