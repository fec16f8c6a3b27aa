#include "plugin.hpp"

#include <dlfcn.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <stdexcept>

#include "handler.hpp"
#include "probe.hpp"

namespace shootout {

namespace {
std::vector<std::string> added(const std::vector<std::string>& before,
                               const std::vector<std::string>& after) {
  std::vector<std::string> out;
  std::set_difference(after.begin(), after.end(), before.begin(), before.end(),
                      std::back_inserter(out));
  return out;
}
}  // namespace

PluginNames load_handler_library(const std::string& path) {
  const auto handlers = handler_names(), probes = probe_names();
  const auto dup_handlers = duplicate_handlers().size(), dup_probes = duplicate_probes().size();
  // A path without a slash would make dlopen search the library path, not the file named.
  const std::string file = path.find('/') == std::string::npos ? "./" + path : path;
  // RTLD_NOW: an unresolved symbol is an error here, not a crash at the first request.
  if (dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL) == nullptr) {
    const char* why = dlerror();
    throw std::runtime_error(
        fmt::format("cannot load handler library {}: {}", path, why ? why : "unknown error"));
  }
  auto dups = duplicate_handlers();
  auto pdups = duplicate_probes();
  dups.erase(dups.begin(), dups.begin() + static_cast<long>(dup_handlers));
  dups.insert(dups.end(), pdups.begin() + static_cast<long>(dup_probes), pdups.end());
  if (!dups.empty())
    throw std::runtime_error(fmt::format("handler library {} registers {}, already registered",
                                         path, fmt::join(dups, ", ")));
  PluginNames names{added(handlers, handler_names()), added(probes, probe_names())};
  if (names.handlers.empty() && names.probes.empty())
    throw std::runtime_error(fmt::format(
        "handler library {} registers no handler and no probe (SHOOTOUT_REGISTER_HANDLER)", path));
  return names;
}

}  // namespace shootout
