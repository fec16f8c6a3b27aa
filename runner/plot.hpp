#pragma once
// Graphs (gnuplot, SVG and PNG) and report.md from a sweep's results. Used at the end of
// `shootout run` and by `shootout plot DIR`, which redraws both from DIR/results.json.
//
// Files written into DIR:
//   graphs/data/<server>.dat   the plotted columns, one file per model or peer
//   graphs/data/breakdown.dat  memory per connection by part, per server, at one N
//   graphs/plot.gp             the gnuplot script (re-run it by hand to tweak a graph)
//   graphs/<name>.svg, .png    rps, capacity, memory, memory-whole, latency, switches, cpu,
//                              ramp
//   report.md                  the graphs, a sentence on each, the table, failures and caps
//
// Main thread; runs gnuplot as a child process and waits for it.
#include <string>
#include <vector>

#include "results.hpp"

namespace shootout::runner {

struct Graph {
  std::string name;  // file stem: rps, capacity, memory, memory-whole, latency, ...
  std::string title;
  std::string what;  // one sentence: what the graph shows
};
const std::vector<Graph>& graphs();

// Writes the data files and plot.gp, runs gnuplot. Returns "" on success or the reason it
// failed (gnuplot missing or failing): the caller reports it, the results stay.
std::string draw_graphs(const std::string& dir, const Results& r);

// Writes DIR/report.md. `graph_error` (from draw_graphs) is said in the report if not empty.
void write_report(const std::string& dir, const Results& r, const std::string& graph_error);

}  // namespace shootout::runner
