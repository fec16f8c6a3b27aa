#pragma once
// How a module contributes a subcommand to build/shootout.
//
// Each module (serve, load, run, plot) exposes one `add_*_command(CLI::App&)` that creates its
// subcommand, binds its flags, and returns a Command whose `run` is called after a successful
// parse when that subcommand was chosen. `run` returns the process exit code.
// Called from the main thread only, before any other thread exists.
#include <CLI/CLI.hpp>
#include <functional>

namespace shootout {

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

Command add_serve_command(CLI::App& app);  // app/serve.cpp
Command add_load_command(CLI::App& app);   // loadgen/cli.cpp
Command add_run_command(CLI::App& app);    // runner/cli.cpp (the shootout runner)
Command add_plot_command(CLI::App& app);   // runner/cli.cpp
Command add_peer_command(CLI::App& app);   // runner/peer_cli.cpp (a peer started by hand)

}  // namespace shootout
