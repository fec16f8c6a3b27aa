#include "helper_pool.hpp"

namespace shootout {

// Runs on a pool thread, with no pool lock held (see the lock order in the header).
void HelperPool::submit(Job job) {
  threads_.post([job = std::move(job)] {
    job.inbox->post({job.fd, job.gen, run_work_inline(job.work)});
  });
}

}  // namespace shootout
