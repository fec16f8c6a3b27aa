#pragma once
// SessionStack: one stack per scheduler thread on which every Session call of that thread runs,
// so that a connection fiber's own stack only ever holds the model's shallow frames.
//
// Why: a fiber keeps, for as long as it lives, every stack page it has ever touched. The HTTP
// handler's deepest frame is Beast's basic_parser::put, which keeps a 4 KiB buffer on the stack;
// run on the fiber's stack, it left every idle connection with 2 resident pages (8 KiB) instead
// of 1. Session calls never block and never touch a fiber primitive (the handler does no I/O),
// so a thread runs at most one at a time and they can all share one stack: the fiber switches
// to it (Boost.Context, two jumps of a few nanoseconds, no system call), the call runs, and it
// switches back. The deep pages are then touched once per thread, not once per connection.
//
// Threads: run() is called by the fibers of one scheduler thread, one call at a time (the call
// must not suspend its fiber). It may be created and destroyed on another thread (a
// Boost.Context stack is not tied to a thread) while no call is in progress.
#include <boost/context/fiber.hpp>
#include <cstddef>
#include <exception>
#include <memory>
#include <type_traits>

#include "handler.hpp"

namespace shootout {

class SessionStack {
 public:
  // Set-up: maps the stack (with a guard page); throws std::bad_alloc or std::system_error.
  explicit SessionStack(std::size_t size);
  ~SessionStack();  // lets the worker return (no unwinding exception), unmaps its stack
  SessionStack(const SessionStack&) = delete;
  SessionStack& operator=(const SessionStack&) = delete;

  // Runs fn() (a Session call: returns Next) on the shared stack and returns its result; an
  // exception fn() throws is rethrown here, on the caller's stack.
  template <class Fn>
  Next run(Fn&& fn) {
    Job job{[](void* f) { return (*static_cast<std::remove_reference_t<Fn>*>(f))(); },
            &fn,
            Next::close,
            {}};
    enter(job);
    return job.result;
  }

 private:
  struct Job {
    Next (*call)(void*);
    void* fn;
    Next result;
    std::exception_ptr error;
  };

  void enter(Job& job);  // switches to the worker, which runs job, and back
  boost::context::fiber worker_loop(boost::context::fiber&& caller);

  Job* job_ = nullptr;
  boost::context::fiber worker_;
};

// A Session whose calls run on a SessionStack. Wraps the real session; same thread rules.
class OffStackSession final : public Session {
 public:
  OffStackSession(Session& inner, SessionStack& stack) : inner_(inner), stack_(stack) {}
  Next on_input(std::string_view in, std::string& out) override {
    return stack_.run([&] { return inner_.on_input(in, out); });
  }
  Next on_resume(std::string& out) override {
    return stack_.run([&] { return inner_.on_resume(out); });
  }
  Next on_work_done(WorkResult result, std::string& out) override {
    return stack_.run([&] { return inner_.on_work_done(std::move(result), out); });
  }
  const Work& pending_work() const override { return inner_.pending_work(); }
  bool mid_request() const override { return inner_.mid_request(); }

 private:
  Session& inner_;
  SessionStack& stack_;
};

}  // namespace shootout
