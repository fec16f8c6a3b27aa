#include "poller.hpp"

#include <stdexcept>
#include <string>

namespace shootout {

std::unique_ptr<Poller> Poller::create(std::string_view backend, Trigger trigger) {
  if (backend == "epoll") return make_epoll_poller(trigger);
  if (backend == "poll") return make_poll_poller();
  if (backend == "select") return make_select_poller();
  throw std::invalid_argument("unknown poller '" + std::string(backend) +
                              "' (expected epoll, poll or select)");
}

}  // namespace shootout
