#include "work_pool.hpp"

#include <cstdint>

#include "trace.hpp"

namespace shootout {

WorkResult WorkPool::run(const Work& work, Reactor& reactor) {
  Job job{&work, &reactor, {}, {}};
  // --trace: an arrow from this fiber's slice to the pool's job, and one back to the slice in
  // which the fiber resumes (common/trace.hpp).
  std::uint64_t flow = 0;
  if (trace::on()) {
    flow = trace::new_flow_id();
    trace::flow(true, flow);
  }
  threads_.post([&job, flow] {
    {
      trace::Span span(flow ? "pool job" : nullptr, "pool");
      if (flow) trace::flow(false, flow);
      job.result = run_work_inline(*job.work);
      if (flow) trace::flow(true, trace::return_flow(flow));
    }
    // The last touch of the job: once posted, its fiber may wake and the job go away.
    job.reactor->post(&job.done);
  });
  job.done.park();
  if (flow) trace::flow(false, trace::return_flow(flow));
  return std::move(job.result);
}

}  // namespace shootout
