#include "server/http_server.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/version.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

namespace tranche::server {

FileBody::~FileBody() {
  if (fd >= 0) ::close(fd);
}
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// `text` without the spaces and tabs around it (a header value's OWS).
beast::string_view trimmed(beast::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

std::string error_body(std::string_view code, std::string_view message) {
  // The API's error shape (docs/api.md), written by hand here: the HTTP layer
  // refuses a request before any handler (and its JSON library) sees it.
  std::string out = R"({"error":{"code":")";
  out += code;
  out += R"(","message":")";
  for (char c : message) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  out += "\"}}";
  return out;
}

struct Shared {
  Handler handler;
  HttpServerOptions options;
  std::atomic<std::size_t> in_flight{0};  // requests read and not yet answered
  std::atomic<bool> stopping{false};
  std::atomic<std::size_t> body_bytes{0};  // reserved by bodies being read or handled
  std::atomic<std::size_t> connections{0};  // admitted and open
  std::mutex addresses_mu;
  std::unordered_map<std::string, std::size_t> per_address;  // admitted and open, by source

  // Takes `n` bytes of the body budget, or nothing when they do not fit.
  bool reserve_body(std::size_t n) {
    const std::size_t budget = options.max_buffered_body_bytes;
    std::size_t current = body_bytes.load();
    do {
      if (n > budget || current > budget - n) return false;
    } while (!body_bytes.compare_exchange_weak(current, current + n));
    return true;
  }

  // Admits a new connection from `address`, or says which budget it is over.
  std::string admit(const std::string& address) {
    const std::size_t cap = options.max_connections;
    if (cap != 0 && connections.fetch_add(1) >= cap) {
      --connections;
      return "the server has its maximum of " + std::to_string(cap) + " connections open";
    }
    if (cap == 0) ++connections;
    if (const std::size_t per = options.max_connections_per_address; per != 0) {
      std::lock_guard lock(addresses_mu);
      std::size_t& mine = per_address[address];
      if (mine >= per) {
        --connections;
        return "this address has its maximum of " + std::to_string(per) + " connections open";
      }
      ++mine;
    }
    return {};
  }
  void leave(const std::string& address) {
    --connections;
    if (options.max_connections_per_address == 0) return;
    std::lock_guard lock(addresses_mu);
    auto it = per_address.find(address);
    if (it != per_address.end() && --it->second == 0) per_address.erase(it);
  }
};

// One connection. Stream is beast::tcp_stream or beast::ssl_stream<tcp_stream>.
template <typename Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  // `refusal` empty: the connection was admitted (Shared::admit) and is
  // counted until this session ends; otherwise it is answered 503 and closed.
  template <typename... Args>
  Session(std::shared_ptr<Shared> shared, std::string remote, std::string refusal, Args&&... args)
      : shared_(std::move(shared)),
        stream_(std::forward<Args>(args)...),
        remote_(std::move(remote)),
        refusal_(std::move(refusal)) {}
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() {
    release_body();
    if (refusal_.empty()) shared_->leave(remote_);
  }

  void run() {
    asio::dispatch(stream_.get_executor(), [self = this->shared_from_this()] { self->on_run(); });
  }

 private:
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void on_run() {
    if constexpr (kTls) {
      lowest().expires_after(shared_->options.idle_timeout);
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (!ec) self->start();
                              });
    } else {
      start();
    }
  }

  void start() {
    if (!refusal_.empty()) return refuse_busy(refusal_);
    do_read();
  }

  // Headers first, within idle_timeout; the body only once it fits the budget.
  void do_read() {
    if (shared_->stopping) return close();
    parser_.emplace();
    parser_->body_limit(shared_->options.max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(shared_->options.max_header_bytes));
    lowest().expires_after(shared_->options.idle_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                              self->on_header(ec);
                            });
  }

  void on_header(beast::error_code ec) {
    if (ec) return on_read(ec);
    version_ = parser_->get().version();
    if (refused_transfer_coding()) return;
    std::size_t need = 0;
    if (auto length = parser_->content_length()) {
      if (*length > shared_->options.max_body_bytes) return on_read(http::error::body_limit);
      need = static_cast<std::size_t>(*length);
    } else if (parser_->chunked()) {
      need = shared_->options.max_body_bytes;
    }
    if (need > 0) {
      if (!shared_->reserve_body(need)) {
        return refuse_busy("request bodies being received exceed the server's budget of " +
                           std::to_string(shared_->options.max_buffered_body_bytes) + " bytes");
      }
      reserved_ = need;
    }
    if (parser_->is_done()) return on_read({});
    // The whole body within body_timeout: a trickle is cut off, not waited for.
    lowest().expires_after(shared_->options.body_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code read_ec, std::size_t) {
                       self->on_read(read_ec);
                     });
  }

  // RFC 9112 6.1: a request whose last transfer coding is not chunked has no
  // knowable length (Beast reads it as empty, and its bytes would be taken for
  // a next request); one with codings besides chunked is not understood here.
  // Either is refused (true) and the connection closed.
  bool refused_transfer_coding() {
    auto te = parser_->get()[http::field::transfer_encoding];
    if (te.empty()) return false;
    const std::string coding(te);
    if (!parser_->chunked()) {
      refuse(400, "bad_request",
             "Transfer-Encoding '" + coding + "': the last transfer coding must be chunked");
      return true;
    }
    if (!beast::iequals(trimmed(te), "chunked")) {
      refuse(501, "not_implemented", "Transfer-Encoding '" + coding + "': only chunked is supported");
      return true;
    }
    return false;
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
        ec == asio::ssl::error::stream_truncated) {
      return close();
    }
    if (ec == http::error::body_limit) {
      return refuse(413, "too_large",
                    "request body exceeds " + std::to_string(shared_->options.max_body_bytes) +
                        " bytes");
    }
    if (ec == http::error::header_limit) {
      return refuse(431, "too_large", "request headers exceed the limit");
    }
    if (ec) return refuse(400, "bad_request", "malformed HTTP request: " + ec.message());

    http::request<http::string_body> req = parser_->release();
    keep_alive_ = req.keep_alive();
    version_ = req.version();
    HttpRequest out;
    out.method = std::string(req.method_string());
    std::string_view target = req.target();
    auto q = target.find('?');
    out.path = std::string(target.substr(0, q));
    if (q != std::string_view::npos) out.query = std::string(target.substr(q + 1));
    out.authorization = std::string(req[http::field::authorization]);
    out.content_type = std::string(req[http::field::content_type]);
    out.host = std::string(req[http::field::host]);
    out.range = std::string(req[http::field::range]);
    head_ = req.method() == http::verb::head;
    out.body = std::move(req.body());
    out.remote = remote_;

    // A held request is not idle: the server is the one taking its time.
    lowest().expires_never();
    ++shared_->in_flight;
    counted_ = true;
    auto self = this->shared_from_this();
    // An answer given while the handler runs is on this connection's strand
    // already: write it at once. One given later, from another thread (a held
    // check-in), is posted to the strand.
    handler_thread_ = std::this_thread::get_id();
    shared_->handler(std::move(out), [self](HttpResponse response) {
      if (self->handler_thread_.load() == std::this_thread::get_id()) {
        self->handler_thread_ = std::thread::id();
        return self->write(std::move(response));
      }
      auto exec = self->stream_.get_executor();
      asio::post(exec, [self, r = std::move(response)]() mutable { self->write(std::move(r)); });
    });
    handler_thread_ = std::thread::id();
  }

  void refuse(unsigned status, std::string_view code, const std::string& message) {
    keep_alive_ = false;
    head_ = false;
    HttpResponse r;
    r.status = status;
    r.body = error_body(code, message);
    write(std::move(r));
  }

  // Over a budget: nothing of the body is read; the client tries again later.
  void refuse_busy(const std::string& why) {
    keep_alive_ = false;
    HttpResponse r;
    r.status = 503;
    r.body = error_body("unavailable", "server busy: " + why + "; try again later");
    r.headers.emplace_back("Retry-After", "2");
    write(std::move(r));
  }

  void release_body() {
    if (reserved_ == 0) return;
    shared_->body_bytes -= reserved_;
    reserved_ = 0;
  }

  // The response as one buffer: status line, headers and body rendered here
  // and written with one async_write (Beast's serializer walking buffer
  // sequences was a fifth of a check-in's instructions).
  void write(HttpResponse response) {
    bool keep = keep_alive_ && !shared_->stopping;
    const std::uint64_t length = response.file ? response.file->length : response.body.size();
    auto out = std::make_shared<std::string>();
    out->reserve((response.file ? 0 : response.body.size()) + 160);
    out->append(version_ == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
    out->append(std::to_string(response.status));
    out->push_back(' ');
    out->append(http::obsolete_reason(static_cast<http::status>(response.status)));
    out->append("\r\nServer: tranche\r\nContent-Type: ");
    out->append(response.content_type);
    out->append("\r\nContent-Length: ");
    out->append(std::to_string(length));
    out->append("\r\n");
    if (!keep) {
      out->append("Connection: close\r\n");
    } else if (version_ == 10) {
      out->append("Connection: keep-alive\r\n");
    }
    for (const auto& [name, value] : response.headers) {
      out->append(name);
      out->append(": ");
      out->append(value);
      out->append("\r\n");
    }
    out->append("\r\n");
    if (!head_ && !response.file) out->append(response.body);
    lowest().expires_after(shared_->options.idle_timeout);
    std::shared_ptr<FileBody> file = head_ ? nullptr : std::move(response.file);
    asio::async_write(stream_, asio::buffer(*out),
                      [self = this->shared_from_this(), out, keep, file](beast::error_code ec, std::size_t) {
                        if (!ec && file && file->length > 0) return self->write_file(file, 0, keep);
                        self->written(ec, keep);
                      });
  }

  // The next chunk of a file body from byte `sent` on; one buffer per
  // connection, each chunk with the idle timeout (a reader that stalls is cut off).
  void write_file(const std::shared_ptr<FileBody>& file, std::uint64_t sent, bool keep) {
    if (!chunk_) chunk_ = std::make_unique<char[]>(kFileChunkBytes);
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(kFileChunkBytes, file->length - sent));
    ssize_t n = -1;
    do {
      n = ::pread(file->fd, chunk_.get(), want, static_cast<off_t>(file->offset + sent));
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {  // shorter than promised, or unreadable: the client must not take it as whole
      return written(beast::error_code(n < 0 ? errno : EIO, beast::system_category()), false);
    }
    lowest().expires_after(shared_->options.idle_timeout);
    asio::async_write(stream_, asio::buffer(chunk_.get(), static_cast<std::size_t>(n)),
                      [self = this->shared_from_this(), file, sent, keep](beast::error_code ec, std::size_t wrote) {
                        const std::uint64_t now = sent + wrote;
                        if (!ec && now < file->length) return self->write_file(file, now, keep);
                        self->chunk_.reset();
                        self->written(ec, keep);
                      });
  }

  // The whole response is out (or the connection failed): next request, or close.
  void written(beast::error_code ec, bool keep) {
    if (counted_) {
      counted_ = false;
      --shared_->in_flight;
    }
    release_body();
    // A large body grew the read buffer: give it back rather than keep it for
    // the connection's life.
    if (buffer_.capacity() > kKeptBufferBytes) buffer_.shrink_to_fit();
    if (ec || !keep) return close();
    do_read();
  }

  void close() {
    beast::error_code ec;
    if constexpr (kTls) {
      lowest().expires_after(std::chrono::seconds(2));
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {
        beast::error_code ignored;
        self->lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
      });
    } else {
      lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
    }
  }

  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;
  static constexpr std::size_t kKeptBufferBytes = 16 * 1024;
  static constexpr std::size_t kFileChunkBytes = 64 * 1024;
  std::unique_ptr<char[]> chunk_;  // while a file body is written

  std::shared_ptr<Shared> shared_;
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool keep_alive_ = false;
  bool counted_ = false;  // this connection's request is in Shared::in_flight
  std::size_t reserved_ = 0;  // bytes of Shared::body_bytes this request holds
  std::string remote_;   // the peer's address
  std::string refusal_;  // why the connection was not admitted; empty: admitted
  std::atomic<std::thread::id> handler_thread_{};  // set while the handler runs
  unsigned version_ = 11;
  bool head_ = false;  // the request being answered is a HEAD: no body is written
};

class BeastServer final : public HttpServer {
 public:
  BeastServer(std::shared_ptr<Shared> shared, unsigned threads)
      : shared_(std::move(shared)), ioc_(static_cast<int>(threads)), accept_strand_(asio::make_strand(ioc_)), acceptor_(accept_strand_) {}

  ~BeastServer() override { stop(std::chrono::milliseconds(0)); }

  core::Status open(tcp::endpoint endpoint) {
    beast::error_code ec;
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return core::make_error(core::ErrorCode::kInvalidArgument,
                              "cannot listen on " + endpoint.address().to_string() + ":" +
                                  std::to_string(endpoint.port()) + ": " + ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    return core::Ok{};
  }

  core::Status load_tls(const TlsFiles& files) {
    ssl_.emplace(asio::ssl::context::tls_server);
    ssl_->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                      asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                      asio::ssl::context::no_tlsv1_1);
    beast::error_code ec;
    ssl_->use_certificate_chain_file(files.cert_chain_pem, ec);
    if (ec) {
      return core::make_error(core::ErrorCode::kInvalidArgument,
                              "--tls-cert " + files.cert_chain_pem + ": " + ec.message());
    }
    ssl_->use_private_key_file(files.private_key_pem, asio::ssl::context::pem, ec);
    if (ec) {
      return core::make_error(core::ErrorCode::kInvalidArgument,
                              "--tls-key " + files.private_key_pem + ": " + ec.message());
    }
    // A key of another certificate would fail every handshake: refuse to start.
    if (SSL_CTX_check_private_key(ssl_->native_handle()) != 1) {
      ERR_clear_error();
      return core::make_error(core::ErrorCode::kInvalidArgument,
                              "--tls-key " + files.private_key_pem + " is not the key of --tls-cert " +
                                  files.cert_chain_pem);
    }
    return core::Ok{};
  }

  void run(unsigned threads) {
    do_accept();
    threads_.reserve(threads);
    for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { ioc_.run(); });
  }

  std::uint16_t port() const override { return port_; }

  void stop(std::chrono::milliseconds grace) override {
    if (stopped_.exchange(true)) return;
    shared_->stopping = true;
    // On the acceptor's strand: an acceptor is not safe to use from two
    // threads, and its accept handler may be running right now.
    asio::post(accept_strand_, [this] {
      beast::error_code ec;
      acceptor_.close(ec);
    });
    // Requests in flight are answered (stopping turns keep-alive off); idle
    // keep-alive connections are simply closed with the io_context.
    auto deadline = std::chrono::steady_clock::now() + grace;
    while (shared_->in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ioc_.stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void do_accept() {
    acceptor_.async_accept(asio::make_strand(ioc_), [this](beast::error_code ec, tcp::socket s) {
      if (ec) {
        if (!acceptor_.is_open() || stopped_) return;
        return accept_failed(ec);
      }
      accept_backoff_ = std::chrono::milliseconds(0);
      beast::error_code ignored;
      s.set_option(tcp::no_delay(true), ignored);
      auto endpoint = s.remote_endpoint(ignored);
      std::string remote = ignored ? "?" : endpoint.address().to_string();
      std::string refusal = shared_->admit(remote);
      if (!refusal.empty()) note_refused(refusal);
      if (ssl_) {
        std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
            shared_, std::move(remote), std::move(refusal), std::move(s), *ssl_)
            ->run();
      } else {
        std::make_shared<Session<beast::tcp_stream>>(shared_, std::move(remote), std::move(refusal),
                                                     std::move(s))
            ->run();
      }
      do_accept();
    });
  }

  std::shared_ptr<Shared> shared_;
  asio::io_context ioc_;
  // Out of file descriptors (EMFILE, ENFILE) or memory: the connection stays in
  // the kernel's backlog, so accepting again at once would spin a core. Wait
  // 10 ms, doubling to 1 s while it lasts, and say so at most once a second.
  void accept_failed(const beast::error_code& ec) {
    accept_backoff_ = std::clamp(accept_backoff_ * 2, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
    ++accept_failures_;
    const auto now = std::chrono::steady_clock::now();
    if (now - accept_logged_ >= std::chrono::seconds(1)) {
      spdlog::warn("http: accepting a connection failed {} time(s): {}; next try in {} ms", accept_failures_,
                   ec.message(), accept_backoff_.count());
      accept_logged_ = now;
      accept_failures_ = 0;
    }
    accept_timer_.expires_after(accept_backoff_);
    accept_timer_.async_wait([this](beast::error_code) {
      if (!stopped_) do_accept();
    });
  }

  // A connection over a budget: said at most once a second, with a count.
  void note_refused(const std::string& why) {
    ++refused_;
    const auto now = std::chrono::steady_clock::now();
    if (now - refused_logged_ >= std::chrono::seconds(1)) {
      spdlog::warn("http: refused {} connection(s) with 503: {}", refused_, why);
      refused_logged_ = now;
      refused_ = 0;
    }
  }

  asio::strand<asio::io_context::executor_type> accept_strand_;  // runs every use of acceptor_
  tcp::acceptor acceptor_;
  asio::steady_timer accept_timer_{accept_strand_};  // the acceptor's strand's
  std::chrono::milliseconds accept_backoff_{0};
  std::uint64_t accept_failures_ = 0;  // since the last line logged
  std::chrono::steady_clock::time_point accept_logged_{};
  std::uint64_t refused_ = 0;  // since the last line logged
  std::chrono::steady_clock::time_point refused_logged_{};
  std::optional<asio::ssl::context> ssl_;
  std::vector<std::thread> threads_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopped_{false};
};

}  // namespace

core::Result<std::unique_ptr<HttpServer>> HttpServer::start(const HttpServerOptions& options,
                                                            Handler handler) {
  beast::error_code ec;
  auto address = asio::ip::make_address(options.address, ec);
  if (ec) {
    return core::make_error(core::ErrorCode::kInvalidArgument,
                            "listen address '" + options.address + "': " + ec.message());
  }
  auto shared = std::make_shared<Shared>();
  shared->handler = std::move(handler);
  shared->options = options;
  unsigned threads = options.threads == 0 ? 1 : options.threads;
  auto server = std::make_unique<BeastServer>(shared, threads);
  if (options.tls) {
    if (auto st = server->load_tls(*options.tls); !st) return st.error();
  }
  if (auto st = server->open(tcp::endpoint(address, options.port)); !st) return st.error();
  server->run(threads);
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace tranche::server
