#pragma once
// Plug-ins: `--handler-lib path/to/lib.so` (serve, load, run) loads a shared object whose
// handlers and probes register themselves exactly as built-in ones do (SHOOTOUT_REGISTER_HANDLER,
// SHOOTOUT_REGISTER_PROBE): its static initialisers run inside dlopen() and call the registry
// of the running binary, which exports its symbols for that (ENABLE_EXPORTS on build/shootout).
// So the shared object is compiled against common/'s headers but does not link shootout_common
// (it would get a registry of its own); examples/CMakeLists.txt shows how.
//
// Threads: call before any thread that uses the registry exists (the CLI does, while parsing).
// The object is never unloaded: the registry keeps its factories.
#include <string>
#include <vector>

namespace shootout {

// Loads `path` and returns the names of the handlers and probes it registered. Throws
// std::runtime_error with a message for the user: the file cannot be loaded (dlerror's text),
// it registers nothing, or it registers a name that was already taken.
struct PluginNames {
  std::vector<std::string> handlers, probes;
};
PluginNames load_handler_library(const std::string& path);

}  // namespace shootout
