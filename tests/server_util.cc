#include "server_util.h"
#include "routes.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <sstream>
#include <thread>

namespace asmsrv::test {

using std::chrono::milliseconds;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void sleep_ms(int ms) { std::this_thread::sleep_for(milliseconds(ms)); }

bool eventually(const std::function<bool()>& pred, int timeout_ms, int step_ms) {
  auto deadline = Clock::now() + milliseconds(timeout_ms);
  for (;;) {
    if (pred()) return true;
    if (Clock::now() >= deadline) return pred();
    sleep_ms(step_ms);
  }
}

std::string spec_path(const std::string& name) {
  return source_dir() + "/specs/" + name + ".json";
}

std::string find_in_path(const std::string& prog) {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::istringstream in(p);
  for (std::string dir; std::getline(in, dir, ':');) {
    if (dir.empty()) dir = ".";
    std::string full = dir + "/" + prog;
    if (::access(full.c_str(), X_OK) == 0) return full;
  }
  return "";
}

std::string write_spec(const std::string& json, const std::string& dir) {
  std::string path = dir + "/spec.json";
  write(path, json);
  return path;
}

std::string spec_copy(const std::string& name, const nlohmann::ordered_json& patch) {
  namespace fsys = std::filesystem;
  std::string dir = temp_dir();
  auto j = nlohmann::ordered_json::parse(read(spec_path(name)));
  j.merge_patch(patch);
  for (const auto& e : fsys::directory_iterator(source_dir() + "/specs"))
    if (e.is_directory())
      fsys::copy(e.path(), fsys::path(dir) / e.path().filename(), fsys::copy_options::recursive);
  std::string path = dir + "/" + name + ".json";
  write(path, j.dump(2) + "\n");
  return path;
}

std::string startup_line(const Spec& spec, int port) {
  return spec.name + " listening on " + address_text(spec) + ":" + std::to_string(port) + "\n";
}

// ---------------------------------------------------------------------------
// Sockets

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    reset();
    fd_ = o.release();
  }
  return *this;
}

int Fd::release() {
  int f = fd_;
  fd_ = -1;
  return f;
}

void Fd::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Fd connect_to(int port, int rcvbuf) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return fd;
  if (rcvbuf > 0) ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  // A blocking connect on loopback completes (or is refused) at once: the
  // kernel finishes the handshake even before the server calls accept().
  for (int tries = 0; tries < 3; ++tries) {
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return fd;
    if (errno != EINTR) break;
  }
  return Fd();
}

int local_port(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return -1;
  return ntohs(a.sin_port);
}

bool send_all(int fd, const std::string& data) {
  size_t off = 0;
  int guard = 0;
  while (off < data.size() && guard++ < 1000000) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return off == data.size();
}

void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void set_reset_on_close(int fd) {
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

bool readable_within(int fd, int timeout_ms) {
  auto deadline = Clock::now() + milliseconds(timeout_ms);
  for (;;) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::max<long long>(left, 0)));
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return true;  // let the caller's read see the error
    if (left <= 0) return false;
  }
}

namespace {

enum class Got { data, eof, error, timeout };

/// One recv() into `out`, waiting until `deadline` at most.
Got recv_some(int fd, std::string& out, Clock::time_point deadline) {
  char buf[65536];
  for (;;) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return Got::timeout;
    pollfd p{fd, POLLIN, 0};
    int pr = ::poll(&p, 1, static_cast<int>(left));
    if (pr < 0 && errno == EINTR) continue;
    if (pr < 0) return Got::error;
    if (pr == 0) continue;  // the deadline check above ends the loop
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Got::error;
    if (n == 0) return Got::eof;
    out.append(buf, static_cast<size_t>(n));
    return Got::data;
  }
}

bool same_name(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return std::string(s.substr(b, e - b));
}

}  // namespace

bool parse_head(Reply& r) {
  std::string_view h = r.head;
  size_t eol = h.find("\r\n");
  r.status_line = std::string(h.substr(0, eol));
  if (r.status_line.size() < 12 || r.status_line.compare(0, 7, "HTTP/1.") != 0 ||
      r.status_line[8] != ' ')
    return false;
  for (int i = 9; i < 12; ++i)
    if (!std::isdigit(static_cast<unsigned char>(r.status_line[static_cast<size_t>(i)])))
      return false;
  r.status = std::stoi(r.status_line.substr(9, 3));
  size_t pos = eol + 2;
  while (pos + 2 <= h.size()) {
    size_t end = h.find("\r\n", pos);
    if (end == std::string_view::npos || end == pos) break;
    std::string_view line = h.substr(pos, end - pos);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return false;
    r.headers.emplace_back(std::string(line.substr(0, colon)), trim(line.substr(colon + 1)));
    pos = end + 2;
  }
  return true;
}

ReadResult read_until_eof(int fd, int timeout_ms) {
  ReadResult r;
  auto deadline = Clock::now() + milliseconds(timeout_ms);
  for (;;) {
    switch (recv_some(fd, r.data, deadline)) {
      case Got::data: continue;
      case Got::eof: r.eof = true; return r;
      case Got::error: r.error = true; return r;
      case Got::timeout: r.timeout = true; return r;
    }
  }
}

ReadResult exchange(int port, const std::string& request, int timeout_ms) {
  Fd fd = connect_to(port);
  if (!fd.valid()) {
    ReadResult r;
    r.error = true;
    return r;
  }
  // A failed send is not final: the server may have answered and closed
  // already; read what is there.
  (void)send_all(fd.get(), request);
  return read_until_eof(fd.get(), timeout_ms);
}

Fd listen_on_any(int port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return fd;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return Fd();
  if (::listen(fd.get(), 16) != 0) return Fd();
  return fd;
}

// ---------------------------------------------------------------------------
// HTTP responses

std::optional<std::string> Reply::header(std::string_view name) const {
  for (const auto& [n, v] : headers)
    if (same_name(n, name)) return v;
  return std::nullopt;
}

int Reply::header_count(std::string_view name) const {
  int n = 0;
  for (const auto& h : headers)
    if (same_name(h.first, name)) ++n;
  return n;
}

Reply read_response(int fd, std::string& pending, bool head_request, int timeout_ms) {
  constexpr size_t kMaxHead = 1u << 20;
  Reply r;
  auto deadline = Clock::now() + milliseconds(timeout_ms);
  auto fail = [&](Got g) {
    r.raw = pending;
    pending.clear();
    r.eof = g == Got::eof;
    r.error = g == Got::error;
    r.timeout = g == Got::timeout;
    return r;
  };
  size_t end;
  while ((end = pending.find("\r\n\r\n")) == std::string::npos) {
    if (pending.size() > kMaxHead) return fail(Got::error);
    Got g = recv_some(fd, pending, deadline);
    if (g != Got::data) return fail(g);
  }
  r.head = pending.substr(0, end + 4);
  if (!parse_head(r)) {
    r.headers.clear();
    return fail(Got::error);
  }
  std::optional<uint64_t> length;
  if (head_request || r.status < 200 || r.status == 204 || r.status == 304) {
    length = 0;
  } else if (auto cl = r.header("Content-Length")) {
    char* e = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(cl->c_str(), &e, 10);
    if (cl->empty() || *e != '\0' || errno != 0) return fail(Got::error);
    length = v;
  }
  size_t body_start = end + 4;
  if (length) {
    while (pending.size() - body_start < *length) {
      Got g = recv_some(fd, pending, deadline);
      if (g != Got::data) return fail(g);
    }
  } else {
    // Delimited by the end of the connection.
    for (;;) {
      Got g = recv_some(fd, pending, deadline);
      if (g == Got::eof) break;
      if (g != Got::data) return fail(g);
    }
    length = pending.size() - body_start;
  }
  size_t total = body_start + static_cast<size_t>(*length);
  r.raw = pending.substr(0, total);
  r.body = pending.substr(body_start, static_cast<size_t>(*length));
  pending.erase(0, total);
  r.complete = true;
  return r;
}

Client::Client(int port, int rcvbuf) : fd_(connect_to(port, rcvbuf)) {}

int Client::local_port() const { return asmsrv::test::local_port(fd_.get()); }

Reply Client::read_response(bool head_request, int timeout_ms) {
  return asmsrv::test::read_response(fd_.get(), pending_, head_request, timeout_ms);
}

ReadResult Client::read_until_eof(int timeout_ms) {
  ReadResult r = asmsrv::test::read_until_eof(fd_.get(), timeout_ms);
  r.data = pending_ + r.data;
  pending_.clear();
  return r;
}

bool Client::closed_within(int timeout_ms, std::string* extra) {
  ReadResult r = read_until_eof(timeout_ms);
  if (extra) *extra += r.data;
  return r.eof || r.error;
}

// ---------------------------------------------------------------------------
// The Date header

namespace {

constexpr const char* kDayNames[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* kMonthNames[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/// The number in s[pos, pos + n) if those are all digits, else -1.
int digits(std::string_view s, size_t pos, size_t n) {
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (i >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i]))) return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

std::string printable(std::string_view s) { return testing::PrintToString(std::string(s)); }

/// The Content-Length of a head, if it has exactly one that is all digits.
std::optional<uint64_t> content_length(std::string_view head) {
  std::optional<uint64_t> found;
  size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < head.size()) {
    size_t start = pos + 2;
    size_t end = head.find("\r\n", start);
    if (end == std::string_view::npos || end == start) break;
    std::string_view line = head.substr(start, end - start);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos && same_name(line.substr(0, colon), "content-length")) {
      std::string v = trim(line.substr(colon + 1));
      if (v.empty() || v.size() > 19 ||
          !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
      if (found) return std::nullopt;
      found = std::stoull(v);
    }
    pos = end;
  }
  return found;
}

}  // namespace

std::string imf_fixdate(time_t t) {
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDayNames[tm.tm_wday],
                tm.tm_mday, kMonthNames[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf;
}

std::optional<time_t> parse_imf_fixdate(std::string_view s) {
  // 0123456789012345678901234567 8
  // Sun, 06 Nov 1994 08:49:37 GMT
  if (s.size() != 29) return std::nullopt;
  if (s.substr(3, 2) != ", " || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || s[19] != ':' ||
      s[22] != ':' || s.substr(25) != " GMT")
    return std::nullopt;
  int wday = -1, mon = -1;
  for (int i = 0; i < 7; ++i)
    if (s.substr(0, 3) == kDayNames[i]) wday = i;
  for (int i = 0; i < 12; ++i)
    if (s.substr(8, 3) == kMonthNames[i]) mon = i;
  int day = digits(s, 5, 2), year = digits(s, 12, 4);
  int hour = digits(s, 17, 2), min = digits(s, 20, 2), sec = digits(s, 23, 2);
  if (wday < 0 || mon < 0 || day < 1 || year < 0 || hour < 0 || hour > 23 || min < 0 ||
      min > 59 || sec < 0 || sec > 59)
    return std::nullopt;
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = mon;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  time_t t = ::timegm(&tm);
  // timegm normalizes (31 Feb is 3 Mar): a real date comes back unchanged.
  std::tm back{};
  ::gmtime_r(&t, &back);
  if (back.tm_mday != day || back.tm_mon != mon || back.tm_year != year - 1900) return std::nullopt;
  if (back.tm_wday != wday) return std::nullopt;
  return t;
}

double wall_clock() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

std::string DateCheck::problem_text() const {
  std::string s;
  for (const auto& p : problems) s += p + "\n";
  return s;
}

DateCheck check_dates(std::string_view bytes, const DateOptions& opt) {
  DateCheck c;
  const double received = opt.received_at ? *opt.received_at : wall_clock();
  size_t pos = 0;
  while (pos < bytes.size()) {
    std::string_view rest = bytes.substr(pos);
    size_t end = rest.find("\r\n\r\n");
    if (rest.substr(0, 5) != "HTTP/" || end == std::string_view::npos) {
      c.stripped.append(rest);  // not a (whole) response head: left to the caller's comparison
      break;
    }
    std::string_view head = rest.substr(0, end + 4);
    size_t status_end = head.find("\r\n");
    std::string_view status_line = head.substr(0, status_end);
    std::string where = "response " + std::to_string(c.responses + 1) + " (" +
                        printable(status_line) + "): ";
    ++c.responses;
    // The field lines, each with its CR LF; Date lines are left out.
    std::vector<std::string_view> fields;
    for (size_t p = status_end + 2; p < head.size() - 2;) {
      size_t e = head.find("\r\n", p);
      fields.push_back(head.substr(p, e + 2 - p));
      p = e + 2;
    }
    int dates = 0;
    std::string kept = std::string(status_line) + "\r\n";
    for (size_t i = 0; i < fields.size(); ++i) {
      std::string_view line = fields[i].substr(0, fields[i].size() - 2);
      size_t colon = line.find(':');
      if (colon == std::string_view::npos || !same_name(line.substr(0, colon), "date")) {
        kept.append(fields[i]);
        continue;
      }
      ++dates;
      std::string_view value = line.substr(std::min(line.size(), colon + 2));
      if (line.substr(0, 6) != "Date: ") {
        c.problems.push_back(where + "the Date line is not written \"Date: <IMF-fixdate>\": " +
                             printable(line));
      } else if (auto t = parse_imf_fixdate(value)) {
        c.dates.emplace_back(value);
        double t_d = static_cast<double>(*t);
        if (t_d < received - opt.max_skew_s || t_d > received + opt.max_skew_s)
          c.problems.push_back(where + "Date " + printable(value) + " is " +
                               std::to_string(received - t_d) +
                               " s from the time it was received (" +
                               imf_fixdate(static_cast<time_t>(received)) + ")");
      } else {
        c.problems.push_back(where + "not an IMF-fixdate: " + printable(line));
      }
      if (i + 1 != fields.size())
        c.problems.push_back(where + "Date is not the last field of the head");
    }
    if (dates == 0 && opt.require) c.problems.push_back(where + "no Date field");
    if (dates > 1) c.problems.push_back(where + std::to_string(dates) + " Date fields");
    kept += "\r\n";
    c.stripped += kept;
    pos += head.size();
    // The body.
    int status = digits(status_line, 9, 3);
    size_t left = bytes.size() - pos;
    size_t body = left;
    if ((status >= 100 && status < 200) || status == 204 || status == 304) {
      body = 0;
    } else if (auto cl = content_length(head)) {
      body = static_cast<size_t>(std::min<uint64_t>(*cl, left));
    }
    c.stripped.append(bytes.substr(pos, body));
    pos += body;
  }
  return c;
}

bool date_required() {
  const char* v = std::getenv("ASMSRV_TEST_DATE");
  return !(v && std::string(v) == "optional");
}

std::string undate(std::string_view bytes, std::optional<double> received_at) {
  DateOptions opt;
  opt.require = date_required();
  opt.received_at = received_at;
  DateCheck c = check_dates(bytes, opt);
  if (!c.ok()) {
    // Once Date is missing, every response of a test says so: keep it short.
    static const testing::TestInfo* test = nullptr;
    static int reported = 0;
    const testing::TestInfo* now = testing::UnitTest::GetInstance()->current_test_info();
    if (now != test) {
      test = now;
      reported = 0;
    }
    if (reported < 10) {
      ADD_FAILURE() << "Date: " << c.problem_text() << "in "
                    << printable(bytes.substr(0, std::min<size_t>(bytes.size(), 400)))
                    << (reported == 0 && opt.require
                            ? "\n(ASMSRV_TEST_DATE=optional accepts responses without Date)"
                            : "");
    } else if (reported == 10) {
      ADD_FAILURE() << "more Date problems in this test are not reported";
    }
    ++reported;
  }
  return c.stripped;
}

Reply undate(Reply r, std::optional<double> received_at) {
  if (!r.complete) {
    r.raw = undate(r.raw, received_at);
    return r;
  }
  r.head = undate(r.head, received_at);
  r.raw = r.head + r.body;
  r.headers.erase(std::remove_if(r.headers.begin(), r.headers.end(),
                                 [](const auto& h) { return same_name(h.first, "date"); }),
                  r.headers.end());
  return r;
}

std::string with_date(std::string_view response, std::string_view date) {
  size_t end = response.find("\r\n\r\n");
  if (end == std::string_view::npos) return std::string(response);
  std::string out(response.substr(0, end + 2));
  out += "Date: ";
  out += date;
  out += "\r\n";
  out.append(response.substr(end + 2));
  return out;
}

// ---------------------------------------------------------------------------
// /proc

std::optional<ProcStat> proc_stat(pid_t pid) {
  std::string text;
  try {
    text = read("/proc/" + std::to_string(pid) + "/stat");
  } catch (...) {
    return std::nullopt;
  }
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
  auto close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream in(text.substr(close + 1));
  std::vector<std::string> f;
  for (std::string w; in >> w && f.size() < 20;) f.push_back(w);
  if (f.size() < 13) return std::nullopt;
  ProcStat s;
  s.state = f[0][0];           // field 3
  s.ppid = std::stoi(f[1]);    // field 4
  s.utime = std::stol(f[11]);  // field 14
  s.stime = std::stol(f[12]);  // field 15
  return s;
}

Children children_of(pid_t pid) {
  Children c;
  DIR* d = ::opendir("/proc");
  if (!d) return c;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long p = std::strtol(e->d_name, &end, 10);
    if (!end || *end != '\0' || p <= 0) continue;
    auto s = proc_stat(static_cast<pid_t>(p));
    if (!s || s->ppid != pid) continue;
    ++c.total;
    if (s->state == 'Z') ++c.zombies;
  }
  ::closedir(d);
  return c;
}

int socket_count(pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return -1;
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char target[256];
    ssize_t len = ::readlink((dir + "/" + e->d_name).c_str(), target, sizeof target - 1);
    if (len > 0 && std::string(target, static_cast<size_t>(len)).rfind("socket:", 0) == 0) ++n;
  }
  ::closedir(d);
  return n;
}

// ---------------------------------------------------------------------------
// Building and running servers

std::string build_server(const std::string& spec, const std::string& syntax, int port,
                         const std::string& dir) {
  std::string bin = dir + "/server";
  CmdResult r = asmsrv::test::asmsrv(
      {"build", spec, "--syntax", syntax, "--port", std::to_string(port), "-o", bin});
  if (r.status != 0 || !exists(bin)) {
    // An assembler can print thousands of lines: the first ones tell.
    auto head = [](const std::string& s) {
      return s.size() <= 4000 ? s : s.substr(0, 4000) + "\n[... " +
                                        std::to_string(s.size() - 4000) + " more bytes]";
    };
    ADD_FAILURE() << "asmsrv build " << spec << " --syntax " << syntax << " --port " << port
                  << " failed with status " << r.status << "\nstdout: " << head(r.out)
                  << "\nstderr: " << head(r.err);
    return "";
  }
  return bin;
}

ServerProcess::ServerProcess(std::string bin, std::string dir, std::optional<rlim_t> nofile,
                             std::vector<std::string> args, std::vector<std::string> env)
    : dir_(std::move(dir)) {
  // Children of a fork-mode server that outlive it are re-parented to this
  // process, which reaps them in the destructor: nothing is left behind.
  static const bool subreaper = ::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0;
  (void)subreaper;
  out_path_ = dir_ + "/stdout";
  err_path_ = dir_ + "/stderr";
  pid_ = ::fork();
  if (pid_ < 0) {
    ADD_FAILURE() << "fork failed: " << std::strerror(errno);
    return;
  }
  if (pid_ == 0) {
    ::setpgid(0, 0);
    int in = ::open("/dev/null", O_RDONLY);
    int out = ::open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || out < 0 || err < 0) ::_exit(126);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    // Nothing but 0, 1, 2 may reach the server: fd 3 must be free for its
    // listening socket (RLIMIT_NOFILE test), and no test socket may leak.
    for (int fd = 3; fd < 4096; ++fd) ::close(fd);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int s : {SIGPIPE, SIGTERM, SIGINT, SIGCHLD}) ::signal(s, SIG_DFL);
    if (::chdir(dir_.c_str()) != 0) ::_exit(126);
    if (nofile) {
      rlimit rl{*nofile, *nofile};
      if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) ::_exit(125);
    }
    std::vector<char*> argv = {const_cast<char*>(bin.c_str())};
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    ::execve(bin.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  ::setpgid(pid_, pid_);  // also from here: no race with the child's own call
}

ServerProcess::~ServerProcess() {
  if (pid_ <= 0) return;
  ::kill(-pid_, SIGKILL);  // the server and any children it forked
  if (!reaped_) {
    ::kill(pid_, SIGKILL);
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  // Its orphaned children are ours now (subreaper): reap them, bounded.
  auto deadline = Clock::now() + milliseconds(2000);
  while (Clock::now() < deadline) {
    int status;
    pid_t r = ::waitpid(-pid_, &status, WNOHANG);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) break;  // ECHILD: none left in the group
    if (r == 0) {
      ::kill(-pid_, SIGKILL);
      sleep_ms(1);
    }
  }
}

std::string ServerProcess::out() const { return exists(out_path_) ? read(out_path_) : ""; }
std::string ServerProcess::err() const { return exists(err_path_) ? read(err_path_) : ""; }

bool ServerProcess::wait_ready(int timeout_ms) {
  auto deadline = Clock::now() + milliseconds(timeout_ms);
  while (Clock::now() < deadline) {
    if (out().find("listening on") != std::string::npos) return true;
    if (exited()) return out().find("listening on") != std::string::npos;
    sleep_ms(5);
  }
  return false;
}

bool ServerProcess::exited() {
  if (pid_ <= 0) return true;
  if (reaped_) return true;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    status_ = status;
  }
  return reaped_;
}

std::optional<int> ServerProcess::wait_exit(int timeout_ms) {
  auto deadline = Clock::now() + milliseconds(timeout_ms);
  for (;;) {
    if (exited()) break;
    if (Clock::now() >= deadline) return std::nullopt;
    sleep_ms(2);
  }
  if (WIFEXITED(status_)) return WEXITSTATUS(status_);
  if (WIFSIGNALED(status_)) return 128 + WTERMSIG(status_);
  return -1;
}

bool ServerProcess::signal(int sig) { return pid_ > 0 && !reaped_ && ::kill(pid_, sig) == 0; }

bool ServerProcess::wait_sockets(int n, int timeout_ms) {
  return eventually([&] { return socket_count(pid_) == n; }, timeout_ms, 2);
}

bool ServerProcess::wait_out_contains(const std::string& text, int timeout_ms) {
  return eventually([&] { return out().find(text) != std::string::npos; }, timeout_ms, 10);
}

void PrintTo(const ModeVariant& v, std::ostream* os) { *os << v.label << " (" << v.syntax << ")"; }

std::string mode_variant_name(const testing::TestParamInfo<ModeVariant>& info) { return info.param.label; }

std::optional<Running> start_server(const std::string& spec_file, const std::string& syntax,
                                    std::optional<rlim_t> nofile) {
  Running r;
  try {
    r.spec = load_spec(spec_file);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "cannot load " << spec_file << ": " << e.what();
    return std::nullopt;
  }
  for (int attempt = 0; attempt < 5; ++attempt) {
    try {
      r.port = free_port();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "no free port: " << e.what();
      return std::nullopt;
    }
    r.dir = temp_dir();
    // A relative root read or written at run time is the server's working
    // directory's: an empty one, there.
    for (const std::string& root : run_time_roots(r.spec))
      if (root[0] != '/') std::filesystem::create_directories(r.dir + "/" + root);
    std::string bin = build_server(spec_file, syntax, r.port, r.dir);
    if (bin.empty()) return std::nullopt;
    r.proc = std::make_unique<ServerProcess>(bin, r.dir, nofile);
    if (r.proc->wait_ready()) {
      std::string out = r.proc->out();
      std::string line = startup_line(r.spec, r.port);
      if (out.rfind(line, 0) != 0) {
        ADD_FAILURE() << "startup line: expected " << testing::PrintToString(line)
                      << ", stdout is " << testing::PrintToString(out);
        return std::nullopt;
      }
      return r;
    }
    std::string err = r.proc->err();
    if (r.proc->exited() && err.find("Address already in use") != std::string::npos)
      continue;  // somebody took the port between free_port() and bind(): retry
    ADD_FAILURE() << spec_file << " (" << syntax << ") did not start on port " << r.port
                  << "\nstdout: " << r.proc->out() << "\nstderr: " << err;
    return std::nullopt;
  }
  ADD_FAILURE() << "could not find a free port for " << spec_file;
  return std::nullopt;
}

}  // namespace asmsrv::test
