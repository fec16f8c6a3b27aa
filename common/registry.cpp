// The handler registry. To add a handler: write its file, then add one line to the table.
#include "builtin_handlers.hpp"
#include "handler.hpp"

namespace shootout {

namespace {
struct Entry {
  std::string_view name;
  std::unique_ptr<Handler> (*make)(const HandlerConfig&);
};

constexpr Entry kHandlers[] = {
    {"echo", make_echo_handler},
    {"http", make_http_handler},
#ifdef SHOOTOUT_HAVE_EXAMPLES
    {"lines", make_lines_handler},  // examples/lines_handler.cpp: the worked example
#endif
};
}  // namespace

std::unique_ptr<Handler> make_handler(std::string_view name, const HandlerConfig& config) {
  for (const auto& e : kHandlers)
    if (e.name == name) return e.make(config);
  return nullptr;
}

std::vector<std::string> handler_names() {
  std::vector<std::string> names;
  for (const auto& e : kHandlers) names.emplace_back(e.name);
  return names;
}

}  // namespace shootout
