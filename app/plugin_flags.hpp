#pragma once
// The command-line side of plug-ins, shared by serve, load and run: `--handler-lib PATH`
// (repeatable) loads each shared object as soon as the flag is parsed, so the registry knows its
// handlers and probes before `--handler` is checked against it (registered_check asks the
// registry when it checks, not when the flag was declared). A file that cannot be loaded, or
// that registers nothing or a taken name, is a usage error (exit 2) that says why.
//
// Threads: CLI parsing runs on main's thread, before any other thread exists.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "plugin.hpp"

namespace shootout {

// Adds --handler-lib to `app`; `loaded` (if given) collects the paths, for passing on to
// child processes (shootout run starts `serve` with them).
inline CLI::Option* add_handler_lib_option(CLI::App& app,
                                           std::vector<std::string>* loaded = nullptr) {
  // CLI11 may run the callback again with the paths seen so far: each is loaded once.
  auto done = std::make_shared<std::vector<std::string>>();
  auto* opt = app.add_option_function<std::vector<std::string>>(
      "--handler-lib",
      [loaded, done](const std::vector<std::string>& paths) {
        for (const auto& p : paths) {
          if (std::find(done->begin(), done->end(), p) != done->end()) continue;
          done->push_back(p);
          try {
            load_handler_library(p);
          } catch (const std::runtime_error& e) {
            throw CLI::ValidationError("--handler-lib", e.what());
          }
          if (loaded) loaded->push_back(p);
        }
      },
      "Load handlers and probes from this shared object (a plug-in; repeatable)");
  opt->check(CLI::ExistingFile)->trigger_on_parse();
  return opt;
}

// A check that the value is a registered name, asked when checking (after plug-ins loaded).
inline CLI::Validator registered_check(std::string what,
                                       std::function<std::vector<std::string>()> names) {
  return CLI::Validator(
      [what, names](std::string& value) -> std::string {
        const auto known = names();
        if (std::find(known.begin(), known.end(), value) != known.end()) return {};
        return fmt::format("no {} named '{}': known are {} (more with --handler-lib)", what, value,
                           fmt::join(known, ", "));
      },
      "NAME", "registered");
}

}  // namespace shootout
