#pragma once
// The table of concurrency models `shootout serve --model` can run. Adding a model is one
// library under models/ and one line in app/models.cpp.
#include <span>
#include <string>
#include <string_view>

#include "handler.hpp"
#include "serve_options.hpp"

namespace shootout {

struct Model {
  std::string_view name;
  std::string_view summary;
  int (*run)(const ServeOptions&, const Handler&);  // main thread; returns the exit code
  // Why this machine cannot run the model ("" if it can); nullptr: it always can.
  std::string (*unavailable)() = nullptr;
};

std::span<const Model> models();
const Model* find_model(std::string_view name);  // nullptr if unknown

}  // namespace shootout
