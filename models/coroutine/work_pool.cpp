#include "work_pool.hpp"

namespace shootout {

WorkPool::WorkPool(int threads) {
  try {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { worker(); });
  } catch (...) {
    stop();  // join the ones that started, then report
    throw;
  }
}

WorkPool::~WorkPool() { stop(); }

void WorkPool::stop() {
  {
    std::lock_guard lock(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

WorkResult WorkPool::run(const Work& work, Reactor& reactor) {
  Job job{&work, &reactor, {}, {}};
  {
    std::lock_guard lock(mu_);
    jobs_.push_back(&job);
  }
  cv_.notify_one();
  job.done.park();
  return std::move(job.result);
}

void WorkPool::worker() {
  for (;;) {
    Job* job = nullptr;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return quit_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // quit_ and nothing left
      job = jobs_.front();
      jobs_.pop_front();
    }
    job->result = run_work_inline(*job->work);
    // The last touch of the job: once posted, its fiber may wake and the job go away.
    job->reactor->post(&job->done);
  }
}

}  // namespace shootout
