#pragma once
// A group of load processes: the seam between run_load() and whatever runs several of it at
// once. K processes ("ranks" 0..K-1) each drive their share of the connections; they agree on
// one start time and one measurement window, and rank 0 ends up with the exact merge of every
// rank's result (docs/LOADGEN.md, "Several load processes: MPI").
//
// Implementations:
//   SingleProcessGroup  size 1; every operation leaves its data as it is. What run_load(config)
//                       uses: one process behaves exactly as it did before groups existed.
//   the MPI group       Open MPI's MPI_COMM_WORLD, in the module build/shootout-mpi.so
//                       (loadgen/mpi_group.cpp), which `shootout load` dlopen()s only when it
//                       was started by mpirun (open_mpi_group() below), so the binary, which is
//                       also every server we measure, never maps libmpi.
//   tests               an in-process group of threads (tests/group_test.cpp).
//
// Every operation but rank(), size() and host() is collective: every rank calls it, in the same
// order, with arrays of the same length. They block until the group has done it; the MPI group
// polls with short sleeps while it waits, so a rank waiting for the others leaves the CPU to its
// own load threads (and to the server, on a shared host).
//
// Threads: one thread per process calls a group's members, the thread that calls run_load()
// (for `shootout load`, the main thread; for MPI it is also the thread that initialised MPI:
// MPI_THREAD_FUNNELED). The load threads never touch it. The caller owns the group; it must
// outlive the run_load() call that uses it.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace shootout::load {

class LoadGroup {
 public:
  enum class Op { sum, min, max };

  virtual ~LoadGroup() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // This process's host name (per-rank lines of the result).
  virtual std::string host() const;

  virtual void barrier() = 0;
  // Rank 0's `data` is copied into every rank's `data`.
  virtual void broadcast(std::span<std::uint64_t> data) = 0;
  // Element-wise reduction over the ranks; every rank receives the result in `data`.
  virtual void all_reduce(Op op, std::span<std::uint64_t> data) = 0;
  virtual void all_reduce(Op op, std::span<double> data) = 0;
  // Rank 0 receives every rank's string, by rank; the other ranks receive an empty vector.
  virtual std::vector<std::string> gather(const std::string& mine) = 0;
};

// One process: rank 0 of 1; every collective is a no-op (the data is already the result).
class SingleProcessGroup final : public LoadGroup {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void barrier() override {}
  void broadcast(std::span<std::uint64_t>) override {}
  void all_reduce(Op, std::span<std::uint64_t>) override {}
  void all_reduce(Op, std::span<double>) override {}
  std::vector<std::string> gather(const std::string& mine) override { return {mine}; }
};

// --- the MPI module --------------------------------------------------------------------------

// The module's entry points (extern "C", resolved with dlsym). kMpiModuleAbi changes whenever
// LoadGroup's layout does, so a stale module is refused rather than called.
inline constexpr int kMpiModuleAbi = 1;
extern "C" {
using MpiModuleAbiFn = int();
// Calls MPI_Init_thread (FUNNELED) and returns the group, owned by the caller (its destructor
// calls MPI_Finalize); nullptr with a message in `error` on failure.
using MpiModuleOpenFn = LoadGroup*(char* error, std::size_t error_size);
}

// What the environment says about mpirun: Open MPI sets OMPI_COMM_WORLD_SIZE and
// OMPI_COMM_WORLD_RANK in every process it starts. size 0: not started by mpirun.
struct MpiLaunch {
  int size = 0, rank = 0;
};
MpiLaunch mpi_launch_from_env();

// The module next to the running binary: <dir of /proc/self/exe>/shootout-mpi.so.
std::string mpi_module_path();

// dlopen()s the module and opens the group (MPI_Init). Throws LoadError with a message for the
// user when the module is missing, stale or MPI cannot start. The module stays loaded for the
// life of the process (Open MPI cannot be unloaded and initialised again).
std::unique_ptr<LoadGroup> open_mpi_group();

}  // namespace shootout::load
