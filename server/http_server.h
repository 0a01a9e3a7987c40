// The HTTP/1.1 listener of tranche-server: Boost.Beast over Asio with a pool of
// worker threads, plain TCP or TLS (OpenSSL). Beast stays inside
// http_server.cpp; the rest of the server sees these plain structs.
//
// A handler receives each request and a Responder, and must call the Responder
// exactly once — now, or later from any thread (long-polled check-ins are
// answered when the answer changes). The connection waits for it; HTTP
// pipelining is not supported (one request at a time per connection).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"

namespace tranche::server {

struct HttpRequest {
  std::string method;         // "GET", "POST", ...
  std::string path;           // target up to '?', not decoded
  std::string query;          // after '?', may be empty
  std::string authorization;  // the Authorization header, may be empty
  std::string content_type;
  std::string host;   // the Host header, may be empty (absolute links: server/ddi.cpp)
  std::string range;  // the Range header, may be empty (artifact downloads)
  std::string body;
  std::string remote;  // peer address, for logs
};

// The answer to a HEAD request is sent without its body (Content-Length still
// names the body's size).
// A body read from an open file while it is written, 64 KiB at a time, so that
// a response of any size (a DDI artifact) is never whole in memory. It owns the
// descriptor and closes it when the last response holding it is gone.
struct FileBody {
  FileBody(int descriptor, std::uint64_t first, std::uint64_t count)
      : fd(descriptor), offset(first), length(count) {}
  FileBody(const FileBody&) = delete;
  FileBody& operator=(const FileBody&) = delete;
  ~FileBody();
  int fd;
  std::uint64_t offset;  // the first byte sent
  std::uint64_t length;  // how many: Content-Length
};

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  // When set, the body is read from here instead (`body` is ignored). A file
  // shorter than promised closes the connection mid-body: the client sees a
  // short read, never wrong bytes.
  std::shared_ptr<FileBody> file;
};

using Responder = std::function<void(HttpResponse)>;
using Handler = std::function<void(HttpRequest&&, Responder)>;

struct TlsFiles {
  std::string cert_chain_pem;  // path
  std::string private_key_pem;  // path
};

struct HttpServerOptions {
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;  // 0: any free port (see HttpServer::port)
  unsigned threads = 2;
  std::size_t max_body_bytes = 1 << 20;
  std::size_t max_header_bytes = 16 * 1024;
  // A connection that sends nothing for this long is closed. It is not a limit on
  // a held (long-poll) request: the server's answer is what it waits for then.
  std::chrono::seconds idle_timeout{60};
  // A request's body must arrive whole within this long of its headers (a
  // client trickling a body is cut off; the headers have idle_timeout).
  std::chrono::seconds body_timeout{30};
  // Budgets. Over any of them a new connection or request is answered 503
  // `unavailable` with Retry-After and closed, before any body is buffered:
  // - open connections (0: no cap; keep it below the descriptor limit);
  // - open connections from one source address (0: no cap — the default, since
  //   devices behind one NAT or proxy share an address);
  // - bytes of request bodies being received or handled at once, reserved from
  //   each request's Content-Length (max_body_bytes for a chunked one).
  std::size_t max_connections = 10000;
  std::size_t max_connections_per_address = 0;
  std::size_t max_buffered_body_bytes = 64u << 20;
  std::optional<TlsFiles> tls;
};

class HttpServer {
 public:
  // Binds, listens and starts the worker threads. Errors name the address and the
  // reason (port in use, certificate unreadable).
  static core::Result<std::unique_ptr<HttpServer>> start(const HttpServerOptions& options,
                                                         Handler handler);
  virtual ~HttpServer() = default;
  virtual std::uint16_t port() const = 0;
  // Stops accepting, lets requests in flight be answered (their Responders still
  // work) for up to `grace`, then closes every connection and joins the threads.
  virtual void stop(std::chrono::milliseconds grace) = 0;
};

}  // namespace tranche::server
