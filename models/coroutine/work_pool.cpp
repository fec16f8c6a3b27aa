#include "work_pool.hpp"

namespace shootout {

WorkResult WorkPool::run(const Work& work, Reactor& reactor) {
  Job job{&work, &reactor, {}, {}};
  threads_.post([&job] {
    job.result = run_work_inline(*job.work);
    // The last touch of the job: once posted, its fiber may wake and the job go away.
    job.reactor->post(&job.done);
  });
  job.done.park();
  return std::move(job.result);
}

}  // namespace shootout
