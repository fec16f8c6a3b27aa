#pragma once
// What the results were measured on: the machine and the versions of everything involved.
// Set-up only (reads /proc, runs `nginx -v` and `apache2 -v`); main thread.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace shootout::runner {

// nproc, cpu_model, memory_mib, kernel, hostname, pid_max, nofile limits.
nlohmann::json machine_info();
// shootout, boost, fmt, nginx, apache2, gnuplot, compiler.
nlohmann::json versions();
// The models `binary serve --model` accepts, from its --help ({a,b,c}). Empty on failure.
std::vector<std::string> available_models(const std::string& binary);
// Why `model` cannot run on this machine (`shootout serve --model M --check`), "" if it can.
std::string model_unavailable(const std::string& binary, const std::string& model);
// /proc/self/exe.
std::string self_binary();

}  // namespace shootout::runner
