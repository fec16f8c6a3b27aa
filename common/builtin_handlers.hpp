#pragma once
// Factories of the handlers the registry knows (one per handler file).
#include <memory>

#include "handler.hpp"

namespace shootout {
std::unique_ptr<Handler> make_echo_handler(const HandlerConfig&);   // common/echo_handler.cpp
std::unique_ptr<Handler> make_http_handler(const HandlerConfig&);   // common/http_handler.cpp
std::unique_ptr<Handler> make_lines_handler(const HandlerConfig&);  // examples/lines_handler.cpp
}  // namespace shootout
