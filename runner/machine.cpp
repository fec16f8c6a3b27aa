#include "machine.hpp"

#include <fmt/format.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <array>
#include <boost/version.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>

#include "peers/peers.hpp"
#include "process.hpp"

#ifndef SHOOTOUT_VERSION
#define SHOOTOUT_VERSION "unknown"
#endif

namespace shootout::runner {

namespace {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
  return "unknown";
}

long mem_total_mib() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  long kb = 0;
  in >> key >> kb;
  return kb / 1024;
}

}  // namespace

nlohmann::json machine_info() {
  utsname u{};
  ::uname(&u);
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  HostLimits h = host_limits();
  return {{"nproc", ::sysconf(_SC_NPROCESSORS_ONLN)},
          {"cpu_model", cpu_model()},
          {"memory_mib", mem_total_mib()},
          {"kernel", std::string(u.release)},
          {"hostname", std::string(u.nodename)},
          {"pid_max", h.pid_max},
          {"nofile_soft", static_cast<long>(rl.rlim_cur)},
          {"nofile_hard", static_cast<long>(rl.rlim_max)}};
}

// The commit of the source tree the binary was built from ("unknown" without git or a checkout;
// "-dirty" when it had uncommitted changes).
std::string source_commit() {
  std::string c = first_line(command_output("git -C '" SHOOTOUT_SOURCE_DIR
                                            "' describe --always --dirty --abbrev=7 2>/dev/null"));
  return c.empty() ? "unknown" : c;
}

nlohmann::json versions() {
  return {{"shootout", SHOOTOUT_VERSION},
          {"commit", source_commit()},
          {"boost", fmt::format("{}.{}.{}", BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000,
                                BOOST_VERSION % 100)},
          {"fmt", fmt::format("{}", FMT_VERSION)},
          {"compiler", "g++ " __VERSION__},
          {"nginx", peer_version("nginx")},
          {"apache2", peer_version("apache-event")},
          {"node", peer_version("node")},
          {"go", peer_version("go")},
          {"tokio", peer_version("tokio")},
          {"eventmachine", peer_version("eventmachine")},
          {"redis", peer_version("redis")},
          {"gnuplot", first_line(command_output("gnuplot --version 2>&1"))}};
}

std::vector<std::string> available_models(const std::string& binary) {
  std::string help = command_output("'" + binary + "' serve --help 2>&1");
  // CLI11 prints the accepted set as `--model TEXT:{forked,threaded,...}`.
  std::smatch m;
  std::vector<std::string> names;
  if (!std::regex_search(help, m, std::regex(R"(--model\s+TEXT:\{([^}]*)\})"))) return names;
  std::string list = m[1];
  std::size_t start = 0;
  while (start <= list.size()) {
    auto comma = list.find(',', start);
    if (comma == std::string::npos) comma = list.size();
    if (comma > start) names.push_back(list.substr(start, comma - start));
    start = comma + 1;
  }
  return names;
}

std::string model_unavailable(const std::string& binary, const std::string& model) {
  std::string out;
  int status = -1;
  if (FILE* p =
          ::popen(("'" + binary + "' serve --check --model '" + model + "' 2>&1").c_str(), "r")) {
    std::array<char, 512> buf{};
    while (std::fgets(buf.data(), buf.size(), p)) out += buf.data();
    status = ::pclose(p);
  }
  if (status == 0) return "";
  out = first_line(out);
  const std::string prefix = "cannot run here: ";
  if (auto at = out.find(prefix); at != std::string::npos) out = out.substr(at + prefix.size());
  return out.empty() ? "`serve --check` failed" : out;
}

std::string self_binary() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string{} : p.string();
}

}  // namespace shootout::runner
