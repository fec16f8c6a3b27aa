#pragma once
// `shootout run --load-ranks K [--load-hosts H1,H2]`: each load run of the sweep and of the
// scenarios goes through mpirun (`mpirun -np K --oversubscribe --bind-to none build/shootout
// load --json-raw --out FILE ...`) instead of run_load() in this process; the server and its
// sampler stay here. Rank 0 samples the server, so it runs on this host: with --load-hosts the
// host list given to mpirun starts with this host (`localhost`, one slot), the other ranks go
// over the listed hosts (docs/RUNNER.md, docs/LOADGEN.md).
//
// Threads: set_load_launch() is called by the CLI's thread before any load run;
// load_launch() and run_load_through_mpirun() are then read/called by the sweep's load threads
// (one run at a time).
#include <chrono>
#include <optional>
#include <string>

#include "load.hpp"

namespace shootout::runner {

struct LoadLaunch {
  int ranks = 1;        // > 1: through mpirun; 0: as many as each run's connections need
  std::string hosts;    // "H1,H2" (mpirun -H), "" = this host only
  std::string binary;   // build/shootout
  std::string log_dir;  // mpirun's output, one log per run
  // The CPU this host's ranks run on (--pin: the load generator's CPU, 1), or -1 for all.
  // mpirun runs with --bind-to none, so its local ranks keep the affinity it starts with.
  int cpu = -1;
};

void set_load_launch(const LoadLaunch& launch);
const LoadLaunch& load_launch();

// A usage error for bad --load-ranks/--load-hosts ("" when fine, or when mpirun is there).
std::string check_load_launch(const LoadLaunch& launch);

// The load processes a run of `connections` takes: --load-ranks K, or with 0 as many as the
// connections need within one process's descriptor limit (the hard RLIMIT_NOFILE, which
// `shootout load` raises itself to; 256 kept for its own files): 1 up to 19,744 here, 6 at
// 100,000.
int load_ranks_for(int connections);

// Source addresses (`--source`) for `connections` from this host to one server port on
// loopback: "" when one address suffices, else 127.0.0.2-127.0.0.M with at most
// load::connections_per_source_address() (half its ephemeral ports: 14,116 here) on each and
// at least one address per rank, so each rank has its own. "" with --load-hosts (their
// addresses are theirs to choose).
std::string loopback_sources_for(int connections, int ranks);

// One load run through mpirun with `ranks` ranks, waited for at most `limit` (then killed:
// nullopt). Throws load::LoadError with the tail of mpirun's log when it fails.
std::optional<load::LoadResult> run_load_through_mpirun(const load::LoadConfig& lc,
                                                        std::chrono::milliseconds limit, int ranks);

}  // namespace shootout::runner
