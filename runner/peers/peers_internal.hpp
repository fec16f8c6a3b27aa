#pragma once
// Shared between the peer generators (peers.cpp, nginx.cpp, apache.cpp, langs.cpp); not for
// other users.
#include "peers.hpp"

namespace shootout::runner {

void write_file(const std::string& path, const std::string& text);
// DIR/htdocs/index.txt = "Hello, World!", readable by the peers' unprivileged workers.
std::string write_docroot(const std::string& dir);

PeerSetup write_nginx_config(const std::string& dir, std::uint16_t port, int connections,
                             const HostLimits& limits, int workers);
// mpm: "prefork", "worker" or "event".
PeerSetup write_apache_config(const std::string& mpm, const std::string& dir, std::uint16_t port,
                              int connections, const HostLimits& limits);

// The runtimes' servers (langs.cpp): node, node-cluster, go, go-2, tokio, tokio-mt,
// eventmachine. is_lang_peer says whether `name` is one of them.
bool is_lang_peer(const std::string& name);
const std::vector<std::string>& lang_peer_names();
std::string lang_peer_binary(const std::string& name);
std::string lang_peer_missing(const std::string& name);
std::string lang_peer_version(const std::string& name);
PeerSetup write_lang_config(const std::string& name, const std::string& dir, std::uint16_t port,
                            int connections, const HostLimits& limits);

// redis-server, the peer of --handler resp (redis.cpp).
bool is_redis_peer(const std::string& name);
std::string redis_binary();
std::string redis_missing();
std::string redis_version();
PeerSetup write_redis_config(const std::string& dir, std::uint16_t port, int connections,
                             const HostLimits& limits);

}  // namespace shootout::runner
