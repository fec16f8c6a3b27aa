// build/shootout-mpi.so: the group of load processes over Open MPI's MPI_COMM_WORLD
// (group.hpp). A MODULE of its own, dlopen()ed by `shootout load` only when mpirun started it:
// build/shootout, which is also every server we measure, never maps libmpi, hwloc, pmix or
// libevent.
//
// Each collective is started non-blocking (MPI_Ibarrier, MPI_Iallreduce, ...) and waited for
// with MPI_Test and a 200 µs sleep between tests: a rank that waits for slower ranks (its ramp
// done, theirs not) does not spin a core its own load threads, or the server, need. A blocking
// MPI call would busy-poll.
//
// Threads: MPI is initialised with MPI_THREAD_FUNNELED; only the thread that opened the group
// (shootout_mpi_open) calls its members and destroys it (MPI_Finalize).
#include <mpi.h>
#include <time.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "group.hpp"

namespace shootout::load {

namespace {

void wait_for(MPI_Request& request) {
  int done = 0;
  for (;;) {
    MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (done) return;
    timespec pause{0, 200'000};
    ::nanosleep(&pause, nullptr);
  }
}

MPI_Op mpi_op(LoadGroup::Op op) {
  switch (op) {
    case LoadGroup::Op::sum:
      return MPI_SUM;
    case LoadGroup::Op::min:
      return MPI_MIN;
    case LoadGroup::Op::max:
      return MPI_MAX;
  }
  return MPI_SUM;
}

class MpiGroup final : public LoadGroup {
 public:
  MpiGroup() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  ~MpiGroup() override { MPI_Finalize(); }
  MpiGroup(const MpiGroup&) = delete;
  MpiGroup& operator=(const MpiGroup&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void barrier() override {
    MPI_Request r;
    MPI_Ibarrier(MPI_COMM_WORLD, &r);
    wait_for(r);
  }
  void broadcast(std::span<std::uint64_t> data) override {
    MPI_Request r;
    MPI_Ibcast(data.data(), static_cast<int>(data.size()), MPI_UINT64_T, 0, MPI_COMM_WORLD, &r);
    wait_for(r);
  }
  void all_reduce(Op op, std::span<std::uint64_t> data) override {
    MPI_Request r;
    MPI_Iallreduce(MPI_IN_PLACE, data.data(), static_cast<int>(data.size()), MPI_UINT64_T,
                   mpi_op(op), MPI_COMM_WORLD, &r);
    wait_for(r);
  }
  void all_reduce(Op op, std::span<double> data) override {
    MPI_Request r;
    MPI_Iallreduce(MPI_IN_PLACE, data.data(), static_cast<int>(data.size()), MPI_DOUBLE, mpi_op(op),
                   MPI_COMM_WORLD, &r);
    wait_for(r);
  }
  std::vector<std::string> gather(const std::string& mine) override {
    int length = static_cast<int>(mine.size());
    std::vector<int> lengths(rank_ == 0 ? static_cast<std::size_t>(size_) : 0);
    MPI_Request r;
    MPI_Igather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, 0, MPI_COMM_WORLD, &r);
    wait_for(r);
    std::vector<int> offsets(lengths.size());
    int total = 0;
    for (std::size_t i = 0; i < lengths.size(); ++i) {
      offsets[i] = total;
      total += lengths[i];
    }
    std::string all(static_cast<std::size_t>(total), '\0');
    MPI_Igatherv(mine.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(),
                 MPI_CHAR, 0, MPI_COMM_WORLD, &r);
    wait_for(r);
    std::vector<std::string> out;
    for (std::size_t i = 0; i < lengths.size(); ++i)
      out.push_back(
          all.substr(static_cast<std::size_t>(offsets[i]), static_cast<std::size_t>(lengths[i])));
    return out;
  }

 private:
  int rank_ = 0, size_ = 1;
};

}  // namespace

}  // namespace shootout::load

extern "C" __attribute__((visibility("default"))) int shootout_mpi_abi() {
  return shootout::load::kMpiModuleAbi;
}

extern "C" __attribute__((visibility("default"))) shootout::load::LoadGroup* shootout_mpi_open(
    char* error, std::size_t error_size) {
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (!initialised) {
    int provided = 0;
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
      std::snprintf(error, error_size, "MPI_Init_thread failed");
      return nullptr;
    }
    if (provided < MPI_THREAD_FUNNELED) {
      std::snprintf(error, error_size,
                    "this MPI gives thread level %d, below MPI_THREAD_FUNNELED (%d)", provided,
                    MPI_THREAD_FUNNELED);
      MPI_Finalize();
      return nullptr;
    }
  }
  return new shootout::load::MpiGroup();
}
