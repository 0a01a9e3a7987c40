// tranche-loadgen: the two measurements of bench/checkin.sh and
// bench/propagation.sh that wrk cannot make (docs/benchmarks.md).
//
//   rate      open-loop check-ins at a fixed request rate over C keep-alive
//             connections, each request with the next device token of a file.
//             Request k of connection j is *due* at t0 + (j + k*C) / rate; it is
//             sent then, or as soon as the connection's previous answer arrives if
//             that is later, and its latency counts from the due time (what wrk2
//             does: a stall is charged to every request it delays, no coordinated
//             omission). Prints the percentiles of the requests due in the window.
//   longpoll  N check-ins held at once (one connection each, body with wait_s),
//             waits until the server's /metrics says all N are held, then sends
//             one operator request and times each held answer from the moment
//             that request was written. Prints p50, p99, max.
//
// One thread, Boost.Asio, a minimal HTTP/1.1 reader (Content-Length bodies only,
// which is what tranche-server sends). Loopback use only.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio.hpp>

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

[[noreturn]] void die(const std::string& what) {
  std::cerr << "tranche-loadgen: " << what << "\n";
  std::exit(2);
}

// One keep-alive connection; one request in flight at a time.
class Conn : public std::enable_shared_from_this<Conn> {
 public:
  using Done = std::function<void(bool ok, int status, std::string_view body)>;

  explicit Conn(asio::io_context& io) : socket_(io) {}

  void connect(const tcp::endpoint& ep, std::function<void(bool)> done) {
    socket_.async_connect(ep, [self = shared_from_this(), done = std::move(done)](
                                  const boost::system::error_code& ec) {
      if (!ec) self->socket_.set_option(tcp::no_delay(true));
      done(!ec);
    });
  }

  void send(std::string request, Done done) {
    out_ = std::move(request);
    done_ = std::move(done);
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                        if (ec) return self->finish(false, 0, {});
                        self->read_some();
                      });
  }

  void close() {
    boost::system::error_code ec;
    socket_.close(ec);
  }

 private:
  void read_some() {
    // A response may already be buffered (never, with one request at a time, but cheap).
    if (try_parse()) return;
    auto old = in_.size();
    in_.resize(old + 16384);
    socket_.async_read_some(asio::buffer(in_.data() + old, 16384),
                            [self = shared_from_this(), old](const boost::system::error_code& ec,
                                                             std::size_t n) {
                              self->in_.resize(old + n);
                              if (ec) return self->finish(false, 0, {});
                              self->read_some();
                            });
  }

  bool try_parse() {
    std::string_view data(in_);
    auto end = data.find("\r\n\r\n");
    if (end == std::string_view::npos) return false;
    std::string_view head = data.substr(0, end);
    int status = 0;
    if (head.size() > 12) status = std::atoi(std::string(head.substr(9, 3)).c_str());
    std::size_t length = 0;
    bool have_length = false;
    std::size_t pos = 0;
    while (pos < head.size()) {
      auto eol = head.find("\r\n", pos);
      if (eol == std::string_view::npos) eol = head.size();
      std::string_view line = head.substr(pos, eol - pos);
      pos = eol + 2;
      constexpr std::string_view kName = "content-length:";
      if (line.size() > kName.size()) {
        bool match = true;
        for (std::size_t i = 0; i < kName.size() && match; ++i) {
          match = static_cast<char>(std::tolower(static_cast<unsigned char>(line[i]))) == kName[i];
        }
        if (match) {
          length = static_cast<std::size_t>(std::strtoull(std::string(line.substr(kName.size())).c_str(),
                                                          nullptr, 10));
          have_length = true;
        }
      }
    }
    if (!have_length) die("response without Content-Length");
    std::size_t total = end + 4 + length;
    if (data.size() < total) return false;
    std::string body(data.substr(end + 4, length));
    in_.erase(0, total);
    finish(true, status, body);
    return true;
  }

  void finish(bool ok, int status, std::string_view body) {
    auto done = std::move(done_);
    done_ = nullptr;
    if (done) done(ok, status, body);
  }

  tcp::socket socket_;
  std::string out_;
  std::string in_;
  Done done_;
};

std::string http_request(std::string_view method, std::string_view path, std::string_view token,
                         std::string_view body) {
  std::string r;
  r.reserve(256 + body.size());
  r.append(method).append(" ").append(path).append(" HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  if (!token.empty()) r.append("Authorization: Bearer ").append(token).append("\r\n");
  r.append("Content-Type: application/json\r\nContent-Length: ")
      .append(std::to_string(body.size()))
      .append("\r\n\r\n")
      .append(body);
  return r;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) die("cannot read " + path);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(line);
  }
  if (out.empty()) die(path + ": no tokens");
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) die("cannot read " + path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto i = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(i, sorted.size() - 1)];
}

// --- rate ---------------------------------------------------------------------------

struct RateRun {
  asio::io_context io;
  tcp::endpoint ep;
  std::vector<std::string> tokens;
  std::size_t next_token = 0;
  std::string path = "/v1/checkin";
  std::string body;
  int connections = 64;
  double rate = 1000;
  double warmup_s = 2;
  double duration_s = 10;
  Clock::time_point t0;
  std::vector<double> latencies_ms;  // of requests due in the window
  std::uint64_t errors = 0;          // non-200 or broken connection, in the window
  std::uint64_t late_sends = 0;      // sent after their due time (server behind)
  std::map<int, std::uint64_t> statuses;

  Clock::time_point due(int conn, std::uint64_t k) const {
    double s = (static_cast<double>(conn) + static_cast<double>(k) * connections) / rate;
    return t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }
  bool in_window(Clock::time_point t) const {
    double s = std::chrono::duration<double>(t - t0).count();
    return s >= warmup_s && s < warmup_s + duration_s;
  }
  Clock::time_point end() const {
    return t0 + std::chrono::duration_cast<Clock::duration>(
                    std::chrono::duration<double>(warmup_s + duration_s));
  }

  void step(std::shared_ptr<Conn> c, std::shared_ptr<asio::steady_timer> timer, int conn,
            std::uint64_t k) {
    auto when = due(conn, k);
    if (when >= end()) return c->close();
    auto fire = [this, c, timer, conn, k, when] {
      const std::string& token = tokens[next_token++ % tokens.size()];
      c->send(http_request("POST", path, token, body),
              [this, c, timer, conn, k, when](bool ok, int status, std::string_view) {
                auto now = Clock::now();
                if (in_window(when)) {
                  if (!ok || status != 200) {
                    ++errors;
                  } else {
                    latencies_ms.push_back(ms_between(when, now));
                  }
                  ++statuses[ok ? status : -1];
                }
                if (!ok) die("connection failed during the run");
                step(c, timer, conn, k + 1);
              });
    };
    auto now = Clock::now();
    if (now >= when) {
      if (now - when > std::chrono::milliseconds(1)) ++late_sends;
      fire();
    } else {
      timer->expires_at(when);
      timer->async_wait([fire](const boost::system::error_code& ec) {
        if (!ec) fire();
      });
    }
  }

  int run() {
    int connected = 0;
    std::vector<std::shared_ptr<Conn>> conns;
    for (int j = 0; j < connections; ++j) {
      auto c = std::make_shared<Conn>(io);
      conns.push_back(c);
      c->connect(ep, [&connected](bool ok) {
        if (!ok) die("connect failed");
        ++connected;
      });
    }
    while (connected < connections) io.run_one();
    io.restart();  // running out of work (the last connect) stopped the context
    t0 = Clock::now() + std::chrono::milliseconds(50);
    for (int j = 0; j < connections; ++j) {
      step(conns[static_cast<std::size_t>(j)], std::make_shared<asio::steady_timer>(io), j, 0);
    }
    io.run();
    std::sort(latencies_ms.begin(), latencies_ms.end());
    double achieved = static_cast<double>(latencies_ms.size() + errors) / duration_s;
    std::printf(
        "rate target=%.0f/s achieved=%.0f/s connections=%d window=%.0fs requests=%zu errors=%llu "
        "late_sends=%llu p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f\n",
        rate, achieved, connections, duration_s, latencies_ms.size(),
        static_cast<unsigned long long>(errors), static_cast<unsigned long long>(late_sends),
        percentile(latencies_ms, 0.50), percentile(latencies_ms, 0.90), percentile(latencies_ms, 0.99),
        percentile(latencies_ms, 0.999), latencies_ms.empty() ? 0.0 : latencies_ms.back());
    for (const auto& [s, n] : statuses) {
      if (s != 200) std::printf("  status %d: %llu\n", s, static_cast<unsigned long long>(n));
    }
    return errors == 0 ? 0 : 1;
  }
};

// --- longpoll -----------------------------------------------------------------------

struct LongPollRun {
  asio::io_context io;
  tcp::endpoint ep;
  std::vector<std::string> tokens;
  std::size_t count = 1000;
  std::string body;
  std::string expect;  // substring every held answer must contain
  std::string admin_token;
  std::string trigger_method = "POST";
  std::string trigger_path;
  std::string trigger_body;
  double timeout_s = 40;

  std::size_t early = 0;  // answered before the trigger: the device was not at rest
  std::size_t answered = 0;
  std::size_t unexpected = 0;
  std::size_t failed = 0;
  bool triggered = false;
  Clock::time_point trigger_at;
  double trigger_ms = -1;  // the operator request's own round trip
  int trigger_status = 0;
  std::string trigger_answer;
  std::vector<double> latencies_ms;

  double held_now() {
    // GET /metrics on a fresh connection, synchronously driven by the loop.
    auto c = std::make_shared<Conn>(io);
    bool done = false;
    double held = -1;
    c->connect(ep, [&](bool ok) {
      if (!ok) die("metrics: connect failed");
      c->send(http_request("GET", "/metrics", "", ""), [&](bool ok2, int, std::string_view text) {
        if (!ok2) die("metrics: request failed");
        constexpr std::string_view kKey = "\ntranche_checkins_held ";
        auto at = text.find(kKey);
        if (at != std::string_view::npos) held = std::atof(std::string(text.substr(at + kKey.size(), 32)).c_str());
        done = true;
      });
    });
    while (!done) io.run_one();
    c->close();
    return held;
  }

  int run() {
    if (tokens.size() < count) die("fewer tokens than --count");
    std::vector<std::shared_ptr<Conn>> conns;
    std::size_t sent = 0;
    for (std::size_t i = 0; i < count; ++i) {
      auto c = std::make_shared<Conn>(io);
      conns.push_back(c);
      c->connect(ep, [this, c, i, &sent](bool ok) {
        if (!ok) die("connect failed (raise ulimit -n?)");
        c->send(http_request("POST", "/v1/checkin", tokens[i], body),
                [this](bool ok2, int status, std::string_view answer) {
                  auto now = Clock::now();
                  if (!ok2 || status != 200) {
                    ++failed;
                    return;
                  }
                  if (!triggered) {
                    ++early;
                    return;
                  }
                  ++answered;
                  latencies_ms.push_back(ms_between(trigger_at, now));
                  if (answer.find(expect) == std::string_view::npos) ++unexpected;
                });
        ++sent;
      });
    }
    auto start = Clock::now();
    while (sent < count) io.run_one();
    // Wait until the server holds all of them.
    double held = 0;
    while (true) {
      io.poll();
      held = held_now();
      if (held >= static_cast<double>(count) || early + failed > 0) break;
      if (Clock::now() - start > std::chrono::seconds(20)) die("not all check-ins were held");
      asio::steady_timer t(io, std::chrono::milliseconds(100));
      t.wait();
    }
    if (early + failed > 0) {
      std::printf("longpoll: %zu answered before the trigger, %zu failed: devices not at rest\n", early,
                  failed);
      return 1;
    }
    // The operator's request, on its own connection (connected before the clock starts).
    auto op = std::make_shared<Conn>(io);
    bool op_connected = false;
    op->connect(ep, [&](bool ok) {
      if (!ok) die("operator connect failed");
      op_connected = true;
    });
    while (!op_connected) io.run_one();
    triggered = true;
    trigger_at = Clock::now();
    op->send(http_request(trigger_method, trigger_path, admin_token, trigger_body),
             [this](bool ok, int status, std::string_view answer) {
               trigger_ms = ms_between(trigger_at, Clock::now());
               trigger_status = ok ? status : -1;
               trigger_answer = std::string(answer.substr(0, 300));
             });
    asio::steady_timer guard(io, std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(timeout_s)));
    guard.async_wait([&](const boost::system::error_code&) {
      for (auto& c : conns) c->close();
      op->close();
    });
    while (answered + failed < count || trigger_ms < 0) {
      if (io.run_one() == 0) break;
    }
    guard.cancel();
    for (auto& c : conns) c->close();
    op->close();
    std::sort(latencies_ms.begin(), latencies_ms.end());
    std::printf("longpoll held=%.0f trigger=\"%s %s\" trigger_status=%d trigger_ms=%.2f answered=%zu/%zu "
                "unexpected=%zu failed=%zu p50_ms=%.2f p99_ms=%.2f max_ms=%.2f min_ms=%.2f\n",
                held, trigger_method.c_str(), trigger_path.c_str(), trigger_status, trigger_ms, answered,
                count, unexpected, failed, percentile(latencies_ms, 0.50), percentile(latencies_ms, 0.99),
                latencies_ms.empty() ? 0.0 : latencies_ms.back(),
                latencies_ms.empty() ? 0.0 : latencies_ms.front());
    if (trigger_status < 200 || trigger_status >= 300) {
      std::printf("  operator answer: %s\n", trigger_answer.c_str());
    }
    return (answered == count && unexpected == 0 && trigger_status >= 200 && trigger_status < 300) ? 0 : 1;
  }
};

std::map<std::string, std::string> parse_flags(int argc, char** argv, int from) {
  std::map<std::string, std::string> out;
  for (int i = from; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0 || i + 1 >= argc) die("expected --flag value, got '" + a + "'");
    out[a.substr(2)] = argv[++i];
  }
  return out;
}

std::string need(const std::map<std::string, std::string>& f, const std::string& k) {
  auto it = f.find(k);
  if (it == f.end()) die("missing --" + k);
  return it->second;
}

std::string get(const std::map<std::string, std::string>& f, const std::string& k, std::string dflt) {
  auto it = f.find(k);
  return it == f.end() ? dflt : it->second;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: tranche-loadgen rate --port P --tokens FILE --rate R [--connections 64] "
                 "[--warmup-s 2] [--duration-s 10] [--body JSON]\n"
                 "       tranche-loadgen longpoll --port P --tokens FILE --count N --body JSON --expect S "
                 "--admin-token T --trigger-path PATH [--trigger-method POST] [--trigger-body-file F]\n";
    return 2;
  }
  std::string mode = argv[1];
  auto f = parse_flags(argc, argv, 2);
  tcp::endpoint ep(asio::ip::make_address(get(f, "host", "127.0.0.1")),
                   static_cast<unsigned short>(std::stoi(need(f, "port"))));
  if (mode == "rate") {
    RateRun r;
    r.ep = ep;
    r.tokens = read_lines(need(f, "tokens"));
    r.rate = std::stod(need(f, "rate"));
    r.connections = std::stoi(get(f, "connections", "64"));
    r.warmup_s = std::stod(get(f, "warmup-s", "2"));
    r.duration_s = std::stod(get(f, "duration-s", "10"));
    r.body = get(f, "body", R"({"versions":{"content":"1.0"}})");
    return r.run();
  }
  if (mode == "longpoll") {
    LongPollRun r;
    r.ep = ep;
    r.tokens = read_lines(need(f, "tokens"));
    r.count = static_cast<std::size_t>(std::stoul(get(f, "count", "1000")));
    r.body = need(f, "body");
    r.expect = need(f, "expect");
    r.admin_token = need(f, "admin-token");
    r.trigger_method = get(f, "trigger-method", "POST");
    r.trigger_path = need(f, "trigger-path");
    if (f.count("trigger-body-file") != 0) r.trigger_body = read_file(f["trigger-body-file"]);
    r.timeout_s = std::stod(get(f, "timeout-s", "40"));
    return r.run();
  }
  die("unknown mode '" + mode + "' (rate or longpoll)");
}
