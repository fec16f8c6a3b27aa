#pragma once
// Files and folders for the tests that run whole commands (runner, scenarios, peers).
// Any thread.
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace shootout::test {

// The whole file, or "" if it cannot be read.
inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A fresh folder under the temp dir that others (nginx's nobody, Apache's www-data) may
// traverse: mkdtemp makes it 0700.
inline std::filesystem::path temp_dir(const std::string& name) {
  std::string tmpl =
      (std::filesystem::temp_directory_path() / ("shootout-" + name + "-XXXXXX")).string();
  char* made = ::mkdtemp(tmpl.data());
  if (!made) throw std::runtime_error("mkdtemp failed");
  ::chmod(made, 0755);
  return made;
}

}  // namespace shootout::test
