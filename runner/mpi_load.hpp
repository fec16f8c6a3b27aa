#pragma once
// `shootout run --load-ranks K [--load-hosts H1,H2]`: each load run of the sweep and of the
// scenarios goes through mpirun (`mpirun -np K --oversubscribe --bind-to none build/shootout
// load --json-raw --out FILE ...`) instead of run_load() in this process; the server and its
// sampler stay here. Rank 0 samples the server, so it runs on this host: with --load-hosts the
// host list given to mpirun starts with this host (`localhost`, one slot), the other ranks go
// over the listed hosts (docs/RUNNER.md, docs/LOADGEN.md).
//
// Threads: set_load_launch() is called once by the CLI's thread before any load run;
// load_launch() and run_load_through_mpirun() are then read/called by the sweep's load threads
// (one run at a time).
#include <chrono>
#include <optional>
#include <string>

#include "load.hpp"

namespace shootout::runner {

struct LoadLaunch {
  int ranks = 1;        // > 1: through mpirun
  std::string hosts;    // "H1,H2" (mpirun -H), "" = this host only
  std::string binary;   // build/shootout
  std::string log_dir;  // mpirun's output, one log per run
};

void set_load_launch(const LoadLaunch& launch);
const LoadLaunch& load_launch();

// A usage error for bad --load-ranks/--load-hosts ("" when fine, or when mpirun is there).
std::string check_load_launch(const LoadLaunch& launch);

// One load run through mpirun, waited for at most `limit` (then killed: nullopt). Throws
// load::LoadError with the tail of mpirun's log when it fails.
std::optional<load::LoadResult> run_load_through_mpirun(const load::LoadConfig& lc,
                                                        std::chrono::milliseconds limit);

}  // namespace shootout::runner
