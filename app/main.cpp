// build/shootout: one binary, one subcommand per job. A wrong flag or value prints the usage
// on stderr and exits 2; --help exits 0.
#include <cstdio>
#include <vector>

#include "command.hpp"

int main(int argc, char** argv) {
  CLI::App app{"shootout: one protocol handler under four concurrency models, measured under load"};
  app.require_subcommand(1);
  app.fallthrough(false);
  std::vector<shootout::Command> commands;
  commands.push_back(shootout::add_serve_command(app));
#ifdef SHOOTOUT_HAVE_LOAD
  commands.push_back(shootout::add_load_command(app));
#endif
#ifdef SHOOTOUT_HAVE_RUN
  commands.push_back(shootout::add_run_command(app));
  commands.push_back(shootout::add_plot_command(app));
  commands.push_back(shootout::add_peer_command(app));
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // The usage of the subcommand that failed (or of the program), then the error: exit 2.
    const CLI::App* where = &app;
    for (auto& c : commands)
      if (c.app->parsed()) where = c.app;
    std::fprintf(stderr, "%s\nerror: %s\n", where->help().c_str(), e.what());
    return 2;
  }
  for (auto& c : commands)
    if (c.app->parsed()) return c.run();
  return 2;
}
