// The group seam's common part: the host name, what mpirun's environment says, and loading the
// MPI module (build/shootout-mpi.so) only when it is needed, so build/shootout never links
// libmpi (group.hpp).
#include "group.hpp"

#include <dlfcn.h>
#include <fmt/format.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <string_view>

#include "load.hpp"

namespace shootout::load {

std::string LoadGroup::host() const {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "?";
  return name;
}

namespace {

int env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v) return -1;
  const std::string_view text(v);
  int n = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  return ec == std::errc() && end == text.data() + text.size() ? n : -1;
}

}  // namespace

MpiLaunch mpi_launch_from_env() {
  MpiLaunch m;
  const int size = env_int("OMPI_COMM_WORLD_SIZE");
  if (size < 1) return m;
  m.size = size;
  m.rank = std::max(0, env_int("OMPI_COMM_WORLD_RANK"));
  return m;
}

std::string mpi_module_path() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "shootout-mpi.so";
  return (exe.parent_path() / "shootout-mpi.so").string();
}

std::unique_ptr<LoadGroup> open_mpi_group() {
  const std::string path = mpi_module_path();
  const MpiLaunch launch = mpi_launch_from_env();
  if (!std::filesystem::exists(path))
    throw LoadError(fmt::format(
        "started by mpirun (OMPI_COMM_WORLD_SIZE={}) but the MPI module {} is missing: build it "
        "(Debian's libopenmpi-dev, cmake -DSHOOTOUT_MPI=ON; scripts/setup.sh installs it) or run "
        "shootout load without mpirun",
        launch.size, path));
  // RTLD_GLOBAL: Open MPI's own plug-ins (mca_*.so) resolve libmpi's symbols globally.
  void* module = ::dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (!module) throw LoadError(fmt::format("cannot load the MPI module {}: {}", path, ::dlerror()));
  auto* abi = reinterpret_cast<MpiModuleAbiFn*>(::dlsym(module, "shootout_mpi_abi"));
  auto* open = reinterpret_cast<MpiModuleOpenFn*>(::dlsym(module, "shootout_mpi_open"));
  if (!abi || !open || abi() != kMpiModuleAbi)
    throw LoadError(fmt::format(
        "the MPI module {} does not match this build/shootout (rebuild both: cmake --build)",
        path));
  char error[512] = {};
  LoadGroup* group = open(error, sizeof error);
  if (!group) throw LoadError(fmt::format("MPI could not start: {}", error));
  return std::unique_ptr<LoadGroup>(group);
}

}  // namespace shootout::load
