#include "cli/cli_config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>

#include "tuf/canonical_json.h"
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace tranche::cli {

namespace json = boost::json;
using core::ErrorCode;
using core::make_error;

std::string cli_config_path() {
  if (const char* p = std::getenv("TRANCHE_CONFIG"); p != nullptr && *p != '\0') return p;
  if (const char* x = std::getenv("XDG_CONFIG_HOME"); x != nullptr && *x != '\0') {
    return std::string(x) + "/tranche/cli.json";
  }
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : ".") + "/.config/tranche/cli.json";
}

core::Result<CliConfig> load_cli_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorCode::kNotFound, path + ": " + std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  auto parsed = tuf::parse_document(text.str(), 64 * 1024);
  if (!parsed) return parsed.error().with_context(path + ": ");
  const json::value& v = *parsed;
  if (!v.is_object()) return make_error(ErrorCode::kParse, path + ": expected a JSON object");
  CliConfig c;
  const auto& o = v.as_object();
  for (auto [key, out] : {std::pair{"server", &c.server}, std::pair{"token", &c.token}}) {
    const auto* f = o.if_contains(key);
    if (f == nullptr || !f->is_string()) {
      return make_error(ErrorCode::kParse, path + ": " + key + ": expected a string");
    }
    *out = std::string(f->as_string());
  }
  return c;
}

core::Status save_cli_config(const std::string& path, const CliConfig& config) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path target(path);
  if (target.has_parent_path()) {
    fs::create_directories(target.parent_path(), ec);
    if (ec) return make_error(ErrorCode::kInvalidArgument, target.parent_path().string() + ": " + ec.message());
  }
  const std::string text =
      json::serialize(json::object{{"server", config.server}, {"token", config.token}}) + "\n";
  const std::string tmp = path + ".tmp";
  // 0600 from the start: the token is never readable by others, not even briefly.
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return make_error(ErrorCode::kInvalidArgument, tmp + ": " + std::strerror(errno));
  ::fchmod(fd, 0600);  // an old temp file may have had other bits
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      return make_error(ErrorCode::kInvalidArgument, tmp + ": " + why);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    return make_error(ErrorCode::kInvalidArgument, tmp + ": " + std::strerror(errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return make_error(ErrorCode::kInvalidArgument, path + ": " + std::strerror(errno));
  }
  return core::Ok{};
}

}  // namespace tranche::cli
