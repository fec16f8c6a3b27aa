#include "models.hpp"

#include "threaded/server.hpp"
#ifdef SHOOTOUT_HAVE_FORKED
#include "forked/server.hpp"
#endif
#ifdef SHOOTOUT_HAVE_EVENTED
#include "evented/server.hpp"
#endif
#ifdef SHOOTOUT_HAVE_COROUTINE
#include "coroutine/server.hpp"
#endif
#ifdef SHOOTOUT_HAVE_URING
#include "uring/loop.hpp"
#include "uring/server.hpp"
#endif

namespace shootout {

namespace {
constexpr Model kModels[] = {
#ifdef SHOOTOUT_HAVE_FORKED
    {"forked", "a process per connection, or a prefork pool (--prefork N)", run_forked},
#endif
    {"threaded", "a thread per connection, or a fixed pool (--pool N)", run_threaded},
#ifdef SHOOTOUT_HAVE_EVENTED
    {"evented", "epoll/poll/select event loop(s) with timers and a helper pool", run_evented},
#endif
#ifdef SHOOTOUT_HAVE_COROUTINE
    {"coroutine", "a Boost.Fiber per connection on an epoll-driven scheduler", run_coroutine},
#endif
#ifdef SHOOTOUT_HAVE_URING
    {"uring", "io_uring completion loop(s) with timers and a helper pool", run_uring,
     [] { return uring_unavailable(); }},
#endif
};
}  // namespace

std::span<const Model> models() { return kModels; }

const Model* find_model(std::string_view name) {
  for (const auto& m : kModels)
    if (m.name == name) return &m;
  return nullptr;
}

}  // namespace shootout
