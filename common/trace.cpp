#include "trace.hpp"

#include <fmt/format.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <new>
#include <set>
#include <utility>
#include <vector>

namespace shootout::trace {

namespace detail {
bool enabled = false;
}

namespace {

struct Event {
  const char* name;  // nullptr: never written (or torn by a killed child)
  const char* cat;
  const char* a_name;
  const char* b_name;
  std::int64_t ts;  // ns, steady clock
  std::int64_t dur;
  std::int64_t a;
  std::int64_t b;  // flows: the id
  std::int32_t pid;
  std::int32_t tid;
  char ph;
};

// The header at the start of a ring's mapping; the events follow it.
struct Ring {
  std::atomic<std::uint64_t> next{0};  // events ever written; the slot is next % cap
  std::uint64_t mask = 0;              // cap - 1 (cap is a power of two)
  std::size_t bytes = 0;               // of the whole mapping
  bool shared = false;
  Event* events() { return reinterpret_cast<Event*>(this + 1); }
};
// events() starts right after the header: that address must suit an Event (the ASan build does
// not check alignment at run time, CMakeLists.txt).
static_assert(sizeof(Ring) % alignof(Event) == 0);

constexpr std::size_t kMaxNames = 65'536;  // (tid, name) pairs kept for the metadata

struct Recorder {
  std::string path;
  std::uint64_t cap = 0;
  bool shared = false;
  std::int64_t t0 = 0;
  pid_t parent = 0;
  std::mutex mu;                  // guards the three below; never taken on the hot path
  std::vector<Ring*> rings;       // every ring ever made
  std::vector<Ring*> free_rings;  // rings of threads that ended
  std::vector<std::pair<int, std::string>> names;
  Ring* shared_ring = nullptr;
};

Recorder& rec() {
  static Recorder* r = new Recorder;  // never destroyed: threads may record until _exit
  return *r;
}

thread_local Ring* t_ring = nullptr;
thread_local int t_pid = 0;
thread_local int t_tid = 0;
thread_local std::uint32_t t_flow_seq = 0;

Ring* map_ring(std::uint64_t cap, bool shared) {
  std::size_t bytes = sizeof(Ring) + cap * sizeof(Event);
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  Ring* r = new (p) Ring;
  r->mask = cap - 1;
  r->bytes = bytes;
  r->shared = shared;
  return r;
}

// Gives the thread's ring back when the thread ends, for the next thread to use.
struct RingReturn {
  ~RingReturn() {
    if (!t_ring || t_ring->shared) return;
    std::lock_guard lock(rec().mu);
    rec().free_rings.push_back(t_ring);
    t_ring = nullptr;
  }
};

void identify() {
  t_pid = ::getpid();
  t_tid = static_cast<int>(::gettid());
}

// Off the hot path: once per thread.
Ring* acquire(std::string_view name) {
  Recorder& r = rec();
  if (!t_tid) identify();
  std::lock_guard lock(r.mu);
  if (r.names.size() < kMaxNames) r.names.emplace_back(t_tid, std::string(name));
  if (t_ring) return t_ring;
  if (r.shared) return t_ring = r.shared_ring;
  if (!r.free_rings.empty()) {
    t_ring = r.free_rings.back();
    r.free_rings.pop_back();
  } else {
    t_ring = map_ring(r.cap, false);
    if (!t_ring) return nullptr;  // out of address space: this thread records nothing
    r.rings.push_back(t_ring);
  }
  static thread_local RingReturn give_back;
  (void)&give_back;
  return t_ring;
}

inline Event* slot() {
  Ring* r = t_ring;
  if (__builtin_expect(!r, false)) r = acquire("thread");
  if (!r) return nullptr;
  std::uint64_t i;
  if (r->shared) {
    i = r->next.fetch_add(1, std::memory_order_relaxed);
  } else {  // only this thread writes it
    i = r->next.load(std::memory_order_relaxed);
    r->next.store(i + 1, std::memory_order_relaxed);
  }
  Event* e = &r->events()[i & r->mask];
  e->pid = t_pid;
  e->tid = t_tid;
  return e;
}

std::uint64_t round_up_pow2(std::size_t n) {
  std::uint64_t c = 1;
  while (c < n) c <<= 1;
  return c;
}

void write_event(std::FILE* f, const Event& e, std::int64_t t0, bool& first) {
  if (!e.name) return;
  const char* sep = first ? "" : ",\n";
  first = false;
  double ts = static_cast<double>(e.ts - t0) / 1000.0;
  switch (e.ph) {
    case 'X':
      fmt::print(
          f, R"({}{{"name":"{}","cat":"{}","ph":"X","ts":{:.3f},"dur":{:.3f},"pid":{},"tid":{})",
          sep, e.name, e.cat, ts, static_cast<double>(e.dur) / 1000.0, e.pid, e.tid);
      if (e.a_name) {
        fmt::print(f, R"(,"args":{{"{}":{})", e.a_name, e.a);
        if (e.b_name) fmt::print(f, R"(,"{}":{})", e.b_name, e.b);
        fmt::print(f, "}}");
      }
      fmt::print(f, "}}");
      break;
    case 's':
    case 'f':
      fmt::print(
          f,
          R"({}{{"name":"{}","cat":"{}","ph":"{}","id":"0x{:x}","ts":{:.3f},"pid":{},"tid":{}{}}})",
          sep, e.name, e.cat, e.ph, static_cast<std::uint64_t>(e.b), ts, e.pid, e.tid,
          e.ph == 'f' ? R"(,"bp":"e")" : "");
      break;
    case 'C':
      fmt::print(f,
                 R"({}{{"name":"{}","ph":"C","ts":{:.3f},"pid":{},"tid":{},"args":{{"{}":{}}}}})",
                 sep, e.name, ts, e.pid, e.tid, e.name, e.a);
      break;
    default:
      break;
  }
}

}  // namespace

std::int64_t now_ns() {
  timespec t;
  ::clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

void start(std::string path, std::size_t events, bool shared) {
  Recorder& r = rec();
  r.path = std::move(path);
  r.cap = round_up_pow2(events < 2 ? 2 : events);
  r.shared = shared;
  r.t0 = now_ns();
  r.parent = ::getpid();
  if (shared) {
    r.shared_ring = map_ring(r.cap, true);
    if (!r.shared_ring) throw std::bad_alloc();
    r.rings.push_back(r.shared_ring);
  }
  // A forked child must stamp its own pid and tid, not its parent's.
  ::pthread_atfork(nullptr, nullptr, [] {
    if (t_tid) identify();
  });
  detail::enabled = true;
  name_thread("main");
}

void name_thread(std::string_view name) {
  if (on()) acquire(name);
}

void complete(const char* name, const char* cat, std::int64_t start_ns, std::int64_t dur_ns,
              const char* a_name, std::int64_t a, const char* b_name, std::int64_t b) {
  if (!on()) return;
  Event* e = slot();
  if (!e) return;
  e->cat = cat;
  e->ts = start_ns;
  e->dur = dur_ns;
  e->a_name = a_name;
  e->a = a;
  e->b_name = b_name;
  e->b = b;
  e->ph = 'X';
  e->name = name;
}

void flow(bool begin, std::uint64_t id) {
  if (!on()) return;
  Event* e = slot();
  if (!e) return;
  e->cat = "pool";
  e->ts = now_ns();
  e->dur = 0;
  e->a_name = e->b_name = nullptr;
  e->b = static_cast<std::int64_t>(id);
  e->ph = begin ? 's' : 'f';
  e->name = "pool";
}

std::uint64_t new_flow_id() {
  if (!t_tid) identify();
  return (static_cast<std::uint64_t>(t_tid) << 32) | ++t_flow_seq;
}

void counter(const char* name, std::int64_t value) {
  if (!on()) return;
  Event* e = slot();
  if (!e) return;
  e->cat = "counter";
  e->ts = now_ns();
  e->dur = 0;
  e->a_name = name;
  e->a = value;
  e->b_name = nullptr;
  e->ph = 'C';
  e->name = name;
}

bool write() {
  if (!on()) return true;
  Recorder& r = rec();
  std::lock_guard lock(r.mu);
  std::FILE* f = std::fopen(r.path.c_str(), "w");
  if (!f) {
    fmt::print(stderr, "shootout serve: cannot write the trace to {}: {}\n", r.path,
               std::strerror(errno));
    return false;
  }
  fmt::print(f, "{{\"traceEvents\":[\n");
  bool first = true;
  std::set<int> pids, tids;
  for (Ring* ring : r.rings) {
    std::uint64_t end = ring->next.load(std::memory_order_acquire);
    std::uint64_t cap = ring->mask + 1;
    std::uint64_t begin = end > cap ? end - cap : 0;
    for (std::uint64_t i = begin; i < end; ++i) {
      const Event& e = ring->events()[i & ring->mask];
      if (!e.name) continue;
      pids.insert(e.pid);
      tids.insert(e.tid);
      write_event(f, e, r.t0, first);
    }
  }
  // Names of the threads that left events (the latest name given to each tid).
  std::vector<std::pair<int, std::string>> named;
  for (auto it = r.names.rbegin(); it != r.names.rend(); ++it)
    if (tids.erase(it->first)) named.push_back(*it);
  for (const auto& [tid, name] : named) {
    fmt::print(f, R"({}{{"name":"thread_name","ph":"M","pid":{},"tid":{},"args":{{"name":"{}"}}}})",
               first ? "" : ",\n", r.parent, tid, name);
    first = false;
  }
  for (int pid : pids) {
    fmt::print(f, R"({}{{"name":"process_name","ph":"M","pid":{},"tid":0,"args":{{"name":"{}"}}}})",
               first ? "" : ",\n", pid, pid == r.parent ? "shootout serve" : "child");
    first = false;
  }
  fmt::print(f, "\n],\"displayTimeUnit\":\"ms\",\"otherData\":{{\"events_per_ring\":{}}}}}\n",
             r.cap);
  bool ok = std::fflush(f) == 0;
  ok = std::fclose(f) == 0 && ok;
  if (!ok) fmt::print(stderr, "shootout serve: writing the trace to {} failed\n", r.path);
  return ok;
}

}  // namespace shootout::trace
