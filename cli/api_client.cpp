#include "cli/api_client.h"

#include <curl/curl.h>

#include <boost/json.hpp>

#include "tuf/canonical_json.h"
#include <memory>
#include <mutex>

namespace tranche::cli {

namespace json = boost::json;

namespace {

std::size_t append_body(char* data, std::size_t size, std::size_t n, void* out) {
  auto* body = static_cast<std::string*>(out);
  if (body->size() + size * n > kMaxAnswerBytes) return 0;  // curl: CURLE_WRITE_ERROR
  body->append(data, size * n);
  return size * n;
}

// Fills error_code/error_message from the body when it has the API's error shape.
void read_error(ApiReply& r) {
  if (r.ok()) return;
  r.error_code = "http";
  r.error_message = "HTTP status " + std::to_string(r.status);
  auto parsed = tuf::parse_document(r.body, kMaxAnswerBytes);
  if (!parsed || !parsed->is_object()) return;
  const json::value& v = *parsed;
  const auto* err = v.as_object().if_contains("error");
  if (err == nullptr || !err->is_object()) return;
  const auto& e = err->as_object();
  if (const auto* c = e.if_contains("code"); c != nullptr && c->is_string()) {
    r.error_code = std::string(c->as_string());
  }
  if (const auto* m = e.if_contains("message"); m != nullptr && m->is_string()) {
    r.error_message = std::string(m->as_string());
  }
  if (const auto* list = e.if_contains("violations"); list != nullptr && list->is_array()) {
    for (const auto& item : list->as_array()) {
      if (item.is_string()) r.violations.emplace_back(item.as_string());
    }
  }
}

}  // namespace

ApiClient::ApiClient(std::string server, std::string token, long timeout_s)
    : server_(std::move(server)), token_(std::move(token)), timeout_s_(timeout_s) {
  while (!server_.empty() && server_.back() == '/') server_.pop_back();
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

core::Result<ApiReply> ApiClient::request(const std::string& method, const std::string& path,
                                          const std::string& body) const {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return core::make_error(core::ErrorCode::kInternal, "libcurl: cannot start");
  const std::string url = server_ + path;
  std::string payload = body;
  if (method == "POST" && payload.empty()) payload = "{}";
  curl_slist* raw_headers = nullptr;
  const std::string auth = "Authorization: " + scheme_ + " " + token_;
  raw_headers = curl_slist_append(raw_headers, auth.c_str());
  raw_headers = curl_slist_append(raw_headers, "Accept: application/json");
  if (!payload.empty()) raw_headers = curl_slist_append(raw_headers, "Content-Type: application/json");
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers(raw_headers, curl_slist_free_all);

  ApiReply reply;
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  if (!payload.empty()) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(payload.size()));
  }
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s_);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  // Only the server's own protocol: a token must not follow a redirect elsewhere.
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  const CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_WRITE_ERROR) {
    return core::make_error(core::ErrorCode::kTooLarge, server_ + path + ": the answer is longer than " +
                                                            std::to_string(kMaxAnswerBytes) + " bytes");
  }
  if (rc != CURLE_OK) {
    return core::make_error(core::ErrorCode::kUnavailable,
                            "cannot reach " + server_ + ": " + curl_easy_strerror(rc));
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply.status);
  read_error(reply);
  return reply;
}

std::string device_path(const std::string& id, const std::string& tenant, const std::string& suffix,
                        const std::string& extra) {
  std::string query;
  if (!tenant.empty()) query += "&tenant=" + url_encode(tenant);
  if (!extra.empty()) query += "&" + extra;
  return "/v1/devices/" + url_encode(id) + suffix + (query.empty() ? "" : "?" + query.substr(1));
}

std::string url_encode(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (const char ch : s) {
    const auto b = static_cast<unsigned char>(ch);
    if ((b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') || ch == '-' ||
        ch == '.' || ch == '_' || ch == '~' || ch == ':') {
      out += ch;
    } else {
      out += '%';
      out += kHex[b >> 4];
      out += kHex[b & 15];
    }
  }
  return out;
}

}  // namespace tranche::cli
