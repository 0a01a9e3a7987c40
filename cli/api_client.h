// The operator API over HTTP (docs/api.md), for the `tranche` commands that talk to
// a server: one request at a time with a bearer token, through libcurl. CURL* stays
// inside api_client.cpp.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"

namespace tranche::cli {

// The largest answer the CLI reads from a server (a page of 1,000 devices is
// well below it); a longer one is cut off and reported as too large.
inline constexpr std::size_t kMaxAnswerBytes = 32u << 20;

// An answer that arrived: any status. A transport failure (no connection, a
// timeout) is an Error instead, never a status.
struct ApiReply {
  long status = 0;
  std::string body;
  // The API's error shape, {"error":{"code","message"}}, when the body has it; else
  // code "http" and a message naming the status. Empty for 2xx.
  std::string error_code;
  std::string error_message;
  // contract_violation: every violation the server listed.
  std::vector<std::string> violations;
  bool ok() const { return status >= 200 && status < 300; }
};

class ApiClient {
 public:
  // `server` is the base URL ("http://127.0.0.1:8080"); a trailing '/' is dropped.
  ApiClient(std::string server, std::string token, long timeout_s = 30);
  // The Authorization scheme sent with the token ("Bearer" unless set): a DDI
  // device's "TargetToken", as `tranche demo` polls for its SWUpdate clients.
  ApiClient& scheme(std::string s) {
    scheme_ = std::move(s);
    return *this;
  }
  // method "GET"/"POST"; path starts with '/'; body sent as application/json when
  // non-empty (POST always sends one, "{}" at least).
  core::Result<ApiReply> request(const std::string& method, const std::string& path,
                                 const std::string& body = "") const;
  const std::string& server() const { return server_; }

 private:
  std::string server_;
  std::string token_;
  std::string scheme_ = "Bearer";
  long timeout_s_;
};

// Percent-encodes a path segment or query value (ids are [A-Za-z0-9._:-] already;
// this keeps anything else from changing the URL's meaning).
std::string url_encode(const std::string& s);

// GET /v1/devices/{id}[suffix] with its query: the device's tenant (needed
// when several tenants have such an id), then `extra` ("version=V", encoded).
std::string device_path(const std::string& id, const std::string& tenant, const std::string& suffix = "",
                        const std::string& extra = "");

}  // namespace tranche::cli
