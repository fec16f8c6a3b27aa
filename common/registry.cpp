// The handler and probe registries. Handlers and probes add themselves (SHOOTOUT_REGISTER_*,
// handler.hpp, probe.hpp) from static initialisers, possibly before main() and in any order,
// so each table is a function-local static: built on first use, whoever uses it first.
#include <algorithm>
#include <map>

#include "handler.hpp"
#include "probe.hpp"

namespace shootout {

namespace {

template <typename Factory>
struct Table {
  std::map<std::string, Factory, std::less<>> entries;
  std::vector<std::string> duplicates;

  void add(std::string_view name, Factory make) {
    if (!entries.emplace(std::string(name), std::move(make)).second) duplicates.emplace_back(name);
  }
  const Factory* find(std::string_view name) const {
    auto it = entries.find(name);
    return it == entries.end() ? nullptr : &it->second;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [name, make] : entries) out.push_back(name);
    return out;  // std::map: sorted
  }
};

Table<HandlerFactory>& handlers() {
  static Table<HandlerFactory> table;
  return table;
}

Table<ProbeFactory>& probes() {
  static Table<ProbeFactory> table;
  return table;
}

}  // namespace

void register_handler(std::string_view name, HandlerFactory make) {
  handlers().add(name, std::move(make));
}

std::unique_ptr<Handler> make_handler(std::string_view name, const HandlerConfig& config) {
  const HandlerFactory* make = handlers().find(name);
  return make ? (*make)(config) : nullptr;
}

std::vector<std::string> handler_names() { return handlers().names(); }
std::vector<std::string> duplicate_handlers() { return handlers().duplicates; }

void register_probe(std::string_view name, ProbeFactory make) {
  probes().add(name, std::move(make));
}

std::unique_ptr<Probe> make_probe(std::string_view name, const ProbeConfig& config) {
  const ProbeFactory* make = probes().find(name);
  return make ? (*make)(config) : nullptr;
}

std::vector<std::string> probe_names() { return probes().names(); }
std::vector<std::string> duplicate_probes() { return probes().duplicates; }

}  // namespace shootout
