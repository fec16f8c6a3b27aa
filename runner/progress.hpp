#pragma once
// Progress of a sweep: on a terminal, one redrawn line with a bar, the current point and phase
// and an ETA; otherwise (a pipe, a log, CI) one plain line per finished point.
//
// The ETA scales the planned time of the points left by how long the finished points took
// against their plan, so slow starts (Apache pre-spawning thousands of processes) are learnt.
//
// Threads: begin/phase/end from the sweep's thread; on a terminal a ticker thread of its own
// redraws the line twice a second (the load runs block the sweep's thread for seconds).
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>

namespace shootout::runner {

class Progress {
 public:
  // total: the items (runs) of the whole sweep, planned_total_s their time. `tty`: draw the
  // bar (else plain lines).
  Progress(int total, double planned_total_s, bool tty, std::FILE* out = stderr);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void begin(const std::string& label, double planned_s);
  void phase(const std::string& name);
  void end(const std::string& outcome);  // "1234 req/s", "failed: ...", "skipped: ..."
  // `count` of the planned items, planned at `planned_s` in all, will not run (a skipped point).
  void forgo(int count, double planned_s);
  void message(const std::string& line);  // a line of its own above the bar
  std::string eta_text();                 // "3m12s"

 private:
  void draw_locked();
  void ticker();
  std::FILE* out_;
  bool tty_;
  int total_, done_ = 0;
  double planned_total_s_, planned_done_s_ = 0, planned_current_s_ = 0;
  double actual_done_s_ = 0;
  std::chrono::steady_clock::time_point started_, point_started_;
  std::string label_, phase_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace shootout::runner
