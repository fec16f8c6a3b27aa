#pragma once
// The exact merge of several ranks' LoadResults (group.hpp), as run_load(config, group) does it
// at the end of a run; its own header so that the tests can merge results they made up.
//
//   summed     every counter and error kind, the histograms' bins, counts, sums and sums of
//              squares (so the merged percentiles are those of all samples), the per-second
//              series (element by element), client CPU, ramp_reached, connections_in_window,
//              idle_opened, idle_alive
//   min / max  the histograms' min / max; ramp_s, settle_s and elapsed_s take the largest;
//              the client CPU's span, the earliest opening and the latest closing (so the
//              ranks' summed CPU is over a time that holds all of it)
//   as is      config, protocol, server (rank 0's sampler; the other ranks have none)
//   gathered   one RankSummary per rank, into rank 0's per_rank
//
// Threads: the thread that calls run_load() (the group's thread). Collective.
#include "group.hpp"
#include "load.hpp"

namespace shootout::load {

// Merges every rank's `r` into `r` on every rank (per_rank on rank 0 only); sets r.ranks.
// `mine` is this rank's own line (rank, host and connections filled in by the caller; the
// counts are taken from `r` before the merge).
void merge_ranks(LoadResult& r, LoadGroup& group, RankSummary mine);

}  // namespace shootout::load
