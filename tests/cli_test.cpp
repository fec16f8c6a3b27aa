// The command line: usage errors exit 2 with the usage on stderr; --help exits 0.
#include <gtest/gtest.h>

#include "client.hpp"
#include "server_process.hpp"

namespace shootout::test {
namespace {

int run(std::vector<std::string> args, std::string* err = nullptr) {
  args.insert(args.begin(), shootout_binary());
  Process p(args);
  int rc = p.wait(std::chrono::seconds(20));
  if (err) *err = p.stderr_text();
  return rc;
}

TEST(Cli, UnknownFlagPrintsUsageAndExits2) {
  std::string err;
  EXPECT_EQ(run({"serve", "--no-such-flag"}, &err), 2);
  EXPECT_NE(err.find("Usage"), std::string::npos) << err;
  EXPECT_NE(err.find("--no-such-flag"), std::string::npos) << err;
}

TEST(Cli, BadValuesExit2) {
  EXPECT_EQ(run({"serve", "--model", "nope"}), 2);
  EXPECT_EQ(run({"serve", "--handler", "nope"}), 2);
  EXPECT_EQ(run({"serve", "--port", "70000"}), 2);
  EXPECT_EQ(run({"serve", "--pool", "-1"}), 2);
  EXPECT_EQ(run({"serve", "--root", "/no/such/dir"}), 2);
  EXPECT_EQ(run({}), 2);  // a subcommand is required
}

TEST(Cli, HelpExits0) {
  Process p({shootout_binary(), "serve", "--help"});
  EXPECT_EQ(p.wait(std::chrono::seconds(20)), 0);
  EXPECT_NE(p.stdout_text().find("--model"), std::string::npos);
}

TEST(Cli, PortInUseIsAClearErrorNotACrash) {
  ServerProcess first({});
  std::string err;
  EXPECT_EQ(run({"serve", "--port", std::to_string(first.port())}, &err), 1);
  EXPECT_NE(err.find("bind"), std::string::npos) << err;
  EXPECT_EQ(first.stop(), 0);
}

}  // namespace
}  // namespace shootout::test
