// The test helpers that check and strip the Date header (server_util.h),
// on bytes written here: no server. The end-to-end suites trust these to
// tell a well-formed, current, last-placed Date from anything else.
#include <gtest/gtest.h>

#include <ctime>
#include <string>

#include "server_util.h"

namespace {

using namespace ::asmsrv::test;

const std::string kOk =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n";
const std::string kNoContent = "HTTP/1.1 204 No Content\r\nServer: asmsrv\r\n\r\n";
const std::string kBad =
    "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 16\r\n"
    "Connection: close\r\n\r\n400 Bad Request\n";

std::string now_date() { return imf_fixdate(static_cast<time_t>(wall_clock())); }

TEST(ImfFixdate, FormatsTheRfcExample) {
  EXPECT_EQ(imf_fixdate(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(imf_fixdate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(imf_fixdate(951782400), "Tue, 29 Feb 2000 00:00:00 GMT");
  EXPECT_EQ(imf_fixdate(4102444799), "Thu, 31 Dec 2099 23:59:59 GMT");
}

TEST(ImfFixdate, ParsesWhatItFormats) {
  EXPECT_EQ(parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT"), std::optional<time_t>(784111777));
  for (time_t t = 0; t < 4102444800; t += 86400 * 37 + 3671) {
    SCOPED_TRACE(t);
    ASSERT_EQ(parse_imf_fixdate(imf_fixdate(t)), std::optional<time_t>(t));
  }
}

TEST(ImfFixdate, RejectsEverythingElse) {
  for (const std::string s : {
           "Mon, 06 Nov 1994 08:49:37 GMT",   // the day name does not match
           "Sunday, 06-Nov-94 08:49:37 GMT",  // RFC 850 form
           "Sun Nov  6 08:49:37 1994",        // asctime form
           "Sun, 6 Nov 1994 08:49:37 GMT",    // one-digit day
           "Sun, 06 nov 1994 08:49:37 GMT",   // month names are case-sensitive
           "sun, 06 Nov 1994 08:49:37 GMT",   // day names too
           "Sun, 06 Nov 1994 08:49:37 UTC",
           "Sun, 06 Nov 1994 08:49:37 gmt",
           "Sun, 06 Nov 1994 8:49:37 GMT",
           "Sun, 06 Nov 1994 08:49:37 GMT ",
           " Sun, 06 Nov 1994 08:49:37 GMT",
           "Sun, 06 Nov 1994 24:00:00 GMT",
           "Sun, 06 Nov 1994 08:60:00 GMT",
           "Sun, 06 Nov 1994 08:49:61 GMT",
           "Sun, 00 Nov 1994 08:49:37 GMT",
           "Thu, 31 Nov 1994 08:49:37 GMT",   // no 31 November
           "Sat, 29 Feb 1997 00:00:00 GMT",   // not a leap year
           "Sun,  06 Nov 1994 08:49:37 GMT",
           "Sun, 06 Nov 1994 08:49:37\tGMT",
           "",
       }) {
    EXPECT_EQ(parse_imf_fixdate(s), std::nullopt) << s;
  }
  EXPECT_TRUE(parse_imf_fixdate("Thu, 29 Feb 1996 00:00:00 GMT").has_value());
}

TEST(CheckDates, StripsTheLastFieldOfEachHead) {
  std::string d = now_date();
  std::string dated = with_date(kOk, d);
  EXPECT_EQ(dated, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nDate: " +
                       d + "\r\n\r\nok\n");
  // Pipelined: a 200, a 204 (no body), a HEAD's head (Content-Length, no
  // body, at the end), and a body that looks like a Date line.
  std::string tricky = "HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\nDate: x\r\n\r\nabc";
  std::string head_only = kOk.substr(0, kOk.size() - 3);
  std::string all = dated + with_date(kNoContent, d) + with_date(tricky, d) + with_date(kBad, d) +
                    with_date(head_only, d);
  DateCheck c = check_dates(all);
  EXPECT_TRUE(c.ok()) << c.problem_text();
  EXPECT_EQ(c.responses, 5);
  EXPECT_EQ(c.dates, std::vector<std::string>(5, d));
  EXPECT_EQ(c.stripped, kOk + kNoContent + tricky + kBad + head_only);
  EXPECT_EQ(undate(all), kOk + kNoContent + tricky + kBad + head_only);
}

TEST(CheckDates, ReplyLosesItsDate) {
  Reply r;
  r.complete = true;
  std::string d = now_date();
  r.raw = with_date(kOk, d);
  r.head = r.raw.substr(0, r.raw.size() - 3);
  r.body = "ok\n";
  r.headers = {{"Content-Type", "text/plain"}, {"Content-Length", "3"}, {"Date", d}};
  Reply u = undate(r);
  EXPECT_EQ(u.raw, kOk);
  EXPECT_EQ(u.head, kOk.substr(0, kOk.size() - 3));
  EXPECT_EQ(u.header_count("Date"), 0);
  EXPECT_EQ(u.header("Content-Length"), "3");
}

TEST(CheckDates, FindsEveryProblem) {
  std::string d = now_date();
  struct Case {
    std::string bytes, problem;
  };
  const std::vector<Case> cases = {
      {kOk, "no Date field"},
      {with_date(kOk, d) + kOk, "response 2 (\"HTTP/1.1 200 OK\"): no Date field"},
      {"HTTP/1.1 200 OK\r\nDate: " + d + "\r\nContent-Length: 3\r\n\r\nok\n", "not the last field"},
      {with_date(with_date(kOk, d), d), "2 Date fields"},
      {with_date(kOk, "Sun, 06 Nov 1994 08:49:37 GMT"), "s from the time it was received"},
      {with_date(kOk, imf_fixdate(static_cast<time_t>(wall_clock()) + 3600)), "s from the time"},
      {with_date(kOk, "Mon, 06 Nov 1994 08:49:37 GMT"), "not an IMF-fixdate"},
      {with_date(kOk, d + " "), "not an IMF-fixdate"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\ndate: " + d + "\r\n\r\nok\n", "is not written"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nDate:" + d + "\r\n\r\nok\n", "is not written"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.bytes);
    DateCheck c = check_dates(k.bytes);
    EXPECT_FALSE(c.ok());
    EXPECT_NE(c.problem_text().find(k.problem), std::string::npos) << c.problem_text();
    EXPECT_EQ(c.stripped.find(d), std::string::npos) << "every Date line is stripped";
  }
  // Not required: a missing Date is fine, a present one is still checked.
  DateOptions optional;
  optional.require = false;
  EXPECT_TRUE(check_dates(kOk + kBad, optional).ok());
  EXPECT_EQ(check_dates(kOk + with_date(kBad, d), optional).stripped, kOk + kBad);
  EXPECT_FALSE(check_dates(with_date(kOk, "Sun, 06 Nov 1994 08:49:37 GMT"), optional).ok());
  // An old Date, checked against the time it was received.
  DateOptions then;
  then.received_at = 784111777.5;
  EXPECT_TRUE(check_dates(with_date(kOk, "Sun, 06 Nov 1994 08:49:37 GMT"), then).ok());
}

TEST(CheckDates, LeavesWhatIsNotAResponseAlone) {
  EXPECT_TRUE(check_dates("").ok());
  EXPECT_EQ(check_dates("").responses, 0);
  // A raw response that is not HTTP, and a partial head.
  DateCheck raw = check_dates("hello\r\n\r\n");
  EXPECT_EQ(raw.stripped, "hello\r\n\r\n");
  EXPECT_EQ(raw.responses, 0);
  DateCheck partial = check_dates("HTTP/1.1 200 OK\r\nDate: x");
  EXPECT_EQ(partial.stripped, "HTTP/1.1 200 OK\r\nDate: x");
  // Bytes after the last body are kept, after the stripped responses.
  std::string d = now_date();
  EXPECT_EQ(check_dates(with_date(kOk, d) + "junk").stripped, kOk + "junk");
}

}  // namespace
