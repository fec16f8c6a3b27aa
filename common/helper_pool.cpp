#include "helper_pool.hpp"

#include "trace.hpp"

namespace shootout {

// Runs on a pool thread, with no pool lock held (see the lock order in the header).
void HelperPool::submit(Job job) {
  threads_.post([job = std::move(job)] {
    if (!job.trace_id) return job.inbox->post({job.fd, job.gen, run_work_inline(job.work)});
    // Traced: the arrow from the loop's submit ends in this span, and one back to the loop
    // starts at its end (the loop ends it where it takes the result).
    trace::Span span("pool job", "pool");
    trace::flow(false, job.trace_id);
    WorkResult result = run_work_inline(job.work);
    trace::flow(true, trace::return_flow(job.trace_id));
    job.inbox->post({job.fd, job.gen, std::move(result), trace::return_flow(job.trace_id)});
  });
}

}  // namespace shootout
