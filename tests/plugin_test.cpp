// Plug-ins (--handler-lib, common/plugin.hpp): the worked example built as a shared object
// (build/plugins/lines.so, examples/) loaded by the real build/shootout under every model, and
// by the load generator, which drives it with the plug-in's own probe. Bad plug-ins are usage
// errors that say why.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "client.hpp"
#include "server_process.hpp"
#include "variants.hpp"

namespace shootout::test {
namespace {

using namespace std::chrono_literals;

std::string plugin() {
  return (std::filesystem::path(shootout_binary()).parent_path() / "plugins" / "lines.so").string();
}

class PluginServer : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    if (std::string why = unavailable(GetParam()); !why.empty()) GTEST_SKIP() << why;
    ASSERT_TRUE(std::filesystem::exists(plugin())) << plugin() << " is built with shootout";
  }
};

// The same conversation as the built-in handlers' worked example, SLEEP (blocking work the model
// carries out) included.
TEST_P(PluginServer, ExamplePluginServesItsProtocol) {
  auto args = GetParam().args;
  args.insert(args.end(), {"--handler-lib", plugin(), "--handler", "lines"});
  ServerProcess s(args);
  Conn c(s.port());
  c.send("ECHO hello\nCOU");
  c.send("NT\nSLEEP 20\nECHO after sleep\nBOGUS\nQUIT\n");
  EXPECT_EQ(c.read_all(), "hello\n2\nOK\nafter sleep\nERR unknown command\nBYE\n");
  EXPECT_EQ(s.stop(), 0) << s.process().stderr_text();
}

// `shootout load` loads the plug-in too and speaks its protocol with the plug-in's probe:
// every request answered, no error, the server's own count equal to what was sent.
TEST_P(PluginServer, LoadGeneratorDrivesThePluginWithItsProbe) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("plugin-test-" + std::to_string(::getpid()) + "-" + GetParam().name);
  std::filesystem::create_directories(dir);
  const std::string stats = (dir / "stats.json").string();
  auto args = GetParam().args;
  args.insert(args.end(), {"--handler-lib", plugin(), "--handler", "lines", "--stats-file", stats});
  ServerProcess s(args);
  Process load({shootout_binary(), "load", "--handler-lib", plugin(), "--handler", "lines",
                "--json", "-c", "2", "-d", "500ms", "tcp://127.0.0.1:" + std::to_string(s.port())});
  ASSERT_EQ(load.wait(120s), 0) << load.stderr_text();
  const auto j = nlohmann::json::parse(load.stdout_text());
  EXPECT_EQ(j["protocol"], "lines");
  EXPECT_GT(j["requests"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(j["errors"]["total"].get<std::uint64_t>(), 0u);
  const auto sent = j["sent_total"].get<std::uint64_t>();
  EXPECT_EQ(j["responses_total"].get<std::uint64_t>(), sent);
  EXPECT_TRUE(await_requests(s, stats, sent));
  EXPECT_EQ(requests_seen(s, stats), sent);
  EXPECT_EQ(s.stop(), 0) << s.process().stderr_text();
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Models, PluginServer, ::testing::ValuesIn(all_variants()), variant_name);

// Exit status and stderr of `shootout ARGS...`.
std::pair<int, std::string> run(std::vector<std::string> args) {
  args.insert(args.begin(), shootout_binary());
  Process p(args);
  const int status = p.wait(60s);
  return {status, p.stderr_text()};
}

TEST(PluginErrors, WithoutTheLibraryTheHandlerIsUnknownAndTheErrorSaysWhere) {
  const auto [status, err] = run({"serve", "--handler", "lines"});
  EXPECT_EQ(status, 2);
  EXPECT_NE(err.find("no handler named 'lines'"), std::string::npos) << err;
  EXPECT_NE(err.find("--handler-lib"), std::string::npos) << err;
}

TEST(PluginErrors, AMissingFileIsAUsageError) {
  const auto [status, err] = run({"serve", "--handler-lib", "/nonexistent/lib.so"});
  EXPECT_EQ(status, 2);
  EXPECT_NE(err.find("/nonexistent/lib.so"), std::string::npos) << err;
}

TEST(PluginErrors, AFileThatIsNotASharedObjectIsAUsageErrorWithDlopensReason) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("not-a-plugin-" + std::to_string(::getpid()) + ".so");
  { std::ofstream(path) << "not an ELF file\n"; }
  for (const char* cmd : {"serve", "load"}) {
    std::vector<std::string> args{cmd, "--handler-lib", path.string()};
    if (std::string(cmd) == "load") args.push_back("tcp://127.0.0.1:1");
    const auto [status, err] = run(args);
    EXPECT_EQ(status, 2) << cmd;
    EXPECT_NE(err.find("cannot load handler library"), std::string::npos) << cmd << ": " << err;
  }
  std::filesystem::remove(path);
}

TEST(PluginErrors, ALibraryThatRegistersNothingIsRefused) {
  // Any shared object without a registration will do: libc's math library.
  const std::string libm = "/lib/x86_64-linux-gnu/libm.so.6";
  if (!std::filesystem::exists(libm)) GTEST_SKIP() << libm << " not found";
  const auto [status, err] = run({"serve", "--handler-lib", libm});
  EXPECT_EQ(status, 2);
  EXPECT_NE(err.find("registers no handler"), std::string::npos) << err;
}

}  // namespace
}  // namespace shootout::test
