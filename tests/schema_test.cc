// `asmsrv schema`: the JSON Schema of the spec. Real validation by Debian's
// python3-jsonschema (Draft 2020-12): every spec in specs/ and the README's
// examples pass, and what the checker refuses the schema refuses too. The
// checker and the schema read one table (spec_keys.h); a walk over it
// shows that the checker reads every key the schema lists, with the range
// and choices the schema gives.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "spec.h"
#include "spec_keys.h"
#include "test_util.h"

namespace asmsrv::test {
namespace {

using json = nlohmann::ordered_json;

const std::string kCommitted = "/doc/asmsrv.schema.json";

std::string schema_text() {
  CmdResult r = asmsrv({"schema"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  return r.out;
}

// Validates each file against the schema with python3-jsonschema; prints,
// per file, "ok" or the first error as "/pointer: message".
constexpr const char* kValidate = R"(import json, sys
from jsonschema import Draft202012Validator
schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
validator = Draft202012Validator(schema)
for path in sys.argv[2:]:
    errors = sorted(validator.iter_errors(json.load(open(path))), key=lambda e: list(map(str, e.absolute_path)))
    if not errors:
        print("ok")
    else:
        e = errors[0]
        print("/" + "/".join(map(str, e.absolute_path)) + ": " + e.message.replace("\n", " "))
)";

/// What the validator says of each spec text, in order; `skip` says why it
/// cannot run here (no python3-jsonschema).
struct Verdicts {
  std::vector<std::string> lines;
  std::string skip;
};

Verdicts validate(const std::vector<std::string>& specs) {
  const std::string dir = temp_dir();
  const std::string schema = dir + "/asmsrv.schema.json";
  write(schema, schema_text());
  std::vector<std::string> argv = {"python3", "-c", kValidate, schema};
  for (size_t i = 0; i < specs.size(); ++i) {
    argv.push_back(dir + "/spec" + std::to_string(i) + ".json");
    write(argv.back(), specs[i]);
  }
  CmdResult r = run(argv);
  if (r.status == 127 || r.err.find("No module named 'jsonschema'") != std::string::npos)
    return {{}, "python3 with jsonschema (python3-jsonschema) is needed: " + r.err};
  EXPECT_EQ(r.status, 0) << r.err;
  Verdicts v;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) v.lines.push_back(line);
  EXPECT_EQ(v.lines.size(), specs.size()) << r.out << r.err;
  v.lines.resize(specs.size());
  return v;
}

/// The ```json blocks of the README.
std::vector<std::string> readme_examples() {
  std::istringstream in(read(source_dir() + "/README.md"));
  std::vector<std::string> blocks;
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    if (!inside && line == "```json") {
      inside = true;
      blocks.emplace_back();
    } else if (inside && line == "```") {
      inside = false;
    } else if (inside) {
      blocks.back() += line + "\n";
    }
  }
  return blocks;
}

TEST(Schema, CommittedCopyIsCurrent) {
  const std::string out = schema_text();
  const std::string committed = source_dir() + kCommitted;
  const char* update = std::getenv("UPDATE_GOLDEN");
  if (update && std::string(update) == "1") {
    write(committed, out);
    GTEST_SKIP() << "rewrote " << committed;
  }
  ASSERT_TRUE(exists(committed)) << committed << " is missing; run: UPDATE_GOLDEN=1 ctest -R Schema";
  if (read(committed) != out) {
    std::string actual = temp_dir() + "/asmsrv.schema.json";
    write(actual, out);
    CmdResult diff = run({"diff", "-u", committed, actual});
    FAIL() << committed << " differs from what asmsrv schema prints:\n"
           << diff.out << "\nrun: UPDATE_GOLDEN=1 ctest -R Schema";
  }
}

TEST(Schema, IsDeterministicDraft202012) {
  const std::string a = schema_text();
  EXPECT_EQ(a, schema_text());
  json s = json::parse(a);
  EXPECT_EQ(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
  EXPECT_EQ(s["type"], "object");
  EXPECT_EQ(s["additionalProperties"], false);
  for (const auto& [name, def] : s["$defs"].items())
    EXPECT_EQ(def["additionalProperties"], false) << name;
}

TEST(Schema, EverySpecAndReadmeExampleValidates) {
  std::vector<std::string> names, texts;
  for (const std::string& name : spec_names()) {
    names.push_back("specs/" + name + ".json");
    texts.push_back(read(source_dir() + "/" + names.back()));
  }
  std::vector<std::string> readme = readme_examples();
  ASSERT_FALSE(readme.empty()) << "no ```json block in README.md";
  for (size_t i = 0; i < readme.size(); ++i) {
    names.push_back("README.md's ```json block " + std::to_string(i + 1));
    texts.push_back(readme[i]);
  }
  // A spec may name its schema, for editors.
  names.push_back("a spec with \"$schema\"");
  texts.push_back(R"({"$schema": "https://example.org/asmsrv.schema.json", "response": {}})");
  Verdicts v = validate(texts);
  if (!v.skip.empty()) GTEST_SKIP() << v.skip;
  for (size_t i = 0; i < texts.size(); ++i) EXPECT_EQ(v.lines[i], "ok") << names[i];
}

TEST(Schema, RejectsWhatTheCheckerRejects) {
  // Each spec has one mistake; the schema and asmsrv check both find it.
  struct Case {
    std::string spec, pointer;
  };
  std::vector<Case> cases = {
      {R"({"response": {}, "lisen": {}})", "/"},                             // an unknown key
      {R"({"response": {"bdy": "x"}})", "/response"},                        // ... in an object
      {R"({"routes": [{"path": "/", "methd": "GET"}]})", "/routes/0"},       // ... in a route
      {R"({"response": {}, "listen": {"port": "80"}})", "/listen/port"},     // a wrong type
      {R"({"response": {}, "listen": {"port": 70000}})", "/listen/port"},    // out of range
      {R"({"response": {}, "limits": {"request_bytes": 255}})", "/limits/request_bytes"},
      {R"({"response": {"status": 199}})", "/response/status"},
      {R"({"response": {}, "mode": "threads"})", "/mode"},                   // not a choice
      {R"({"routes": [{"path": "/", "method": "get"}]})", "/routes/0/method"},
      {R"({"response": {}, "routes": [{"path": "/"}]})", "/"},               // two of three
      {R"({"name": "x"})", "/"},                                             // none of them
      {R"({"routes": []})", "/routes"},
      {R"({"routes": [{"body": "x"}]})", "/routes/0"},                       // no path
      {R"({"response": {"body": "x", "file": "x"}})", "/response"},          // body and file
      {R"({"response": {"headers": {"Bad Name": "x"}}})", "/response/headers"},
      {R"({"response": {}, "name": "no spaces"})", "/name"},
      {R"({"response": {}, "listen": {"port_env": "1PORT"}})", "/listen/port_env"},
      {R"({"$schema": 2020, "response": {}})", "/$schema"},
      {R"({"response": {}, "static": [{"dir": "public"}]})", "/"},           // static with response
      {R"({"static": [{"dir": "public", "root": "www"}]})", "/static/0"},    // not yet
      {R"({"static": [{"path": "/docs", "dir": "public"}]})", "/static/0/path"},
      {R"({"static": [{"dir": "public", "index": "a/b.html"}]})", "/static/0/index"},
      {R"({"static": [{"dir": "public", "cache_control": {"*": 1}}]})", "/static/0/cache_control/*"},
  };
  std::vector<std::string> texts;
  for (const Case& c : cases) texts.push_back(c.spec);
  Verdicts v = validate(texts);
  if (!v.skip.empty()) GTEST_SKIP() << v.skip;
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].spec);
    EXPECT_TRUE(v.lines[i].starts_with(cases[i].pointer + ": ")) << v.lines[i];
    EXPECT_THROW(parse_spec(cases[i].spec, "s.json"), SpecError);
  }
}

// Where each object of the table sits in a spec that is otherwise valid.
struct Place {
  json spec;
  std::string pointer;
};

Place place_of(std::string_view object) {
  json routes = {{"routes", json::array({{{"path", "/"}}})}};
  json response = {{"response", json::object()}};
  if (object == "") return {response, ""};
  if (object == "route") return {routes, "/routes/0"};
  if (object == "cors") return {{{"routes", routes["routes"]}, {"cors", json::object()}}, "/cors"};
  if (object == "response") return {{{"response", json::object()}}, "/response"};
  if (object == "static") return {{{"static", json::array({{{"dir", "no-such-dir"}}})}}, "/static/0"};
  if (object == "upload") return {{{"uploads", json::array({{{"root", "r"}}})}}, "/uploads/0"};
  json spec = response;
  spec[std::string(object)] = json::object();
  return {spec, "/" + std::string(object)};
}

// A value of the wrong type for a key of this type.
json wrong_type(KeyType t) { return t == KeyType::integer || t == KeyType::choice ? json("x") : json(7); }

TEST(Schema, TheTableDrivesTheCheckerAndTheSchema) {
  json schema = json::parse(schema_text());
  std::vector<std::string> texts, what;
  for (const ObjectSpec& o : spec_objects()) {
    const json& def = o.name.empty() ? schema : schema["$defs"][std::string(o.name)];
    ASSERT_TRUE(def.is_object()) << "no $defs/" << o.name;
    EXPECT_EQ(def["description"], o.description);
    EXPECT_EQ(def["properties"].size(), o.all_keys().size()) << o.name;
    for (const KeySpec* k : o.all_keys()) {
      const std::string name(k->name);
      SCOPED_TRACE(std::string(o.name) + "." + name);
      // The schema lists the key, with the table's type, range and choices.
      ASSERT_TRUE(def["properties"].contains(name));
      const json& prop = def["properties"][name];
      EXPECT_EQ(prop["description"], k->description);
      if (k->type == KeyType::integer) {
        EXPECT_EQ(prop["minimum"], k->min);
        EXPECT_EQ(prop["maximum"], k->max);
      }
      if (k->type == KeyType::choice) {
        ASSERT_EQ(prop["enum"].size(), k->choices.size());
        for (size_t i = 0; i < k->choices.size(); ++i) EXPECT_EQ(prop["enum"][i], k->choices[i]);
      }

      // The checker reads the key: a wrong type is an error at the key, not
      // an unknown key, and the schema refuses it too.
      Place p = place_of(o.name);
      if (o.alternative(k->name)) p.spec = json::object();  // alone
      const std::string ptr = p.pointer + "/" + name;
      const json::json_pointer at(ptr);
      p.spec[at] = wrong_type(k->type);
      try {
        parse_spec(p.spec.dump(), "s.json");
        ADD_FAILURE() << "asmsrv check accepts " << p.spec.dump();
      } catch (const SpecError& e) {
        std::string all = e.what();
        EXPECT_NE(all.find("s.json: " + ptr + ": "), std::string::npos) << all;
        EXPECT_EQ(all.find("unknown key"), std::string::npos) << all;
      }
      texts.push_back(p.spec.dump());
      what.push_back(ptr + " wrong type");

      // An integer just out of the table's range: refused by both, the
      // checker naming the range.
      if (k->type == KeyType::integer) {
        for (int64_t bad : {k->min - 1, k->max + 1}) {
          p.spec[at] = bad;
          try {
            parse_spec(p.spec.dump(), "s.json");
            ADD_FAILURE() << "asmsrv check accepts " << p.spec.dump();
          } catch (const SpecError& e) {
            EXPECT_NE(std::string(e.what()).find(fmt::format("expected an integer from {} to {}", k->min, k->max)),
                      std::string::npos)
                << e.what();
          }
          texts.push_back(p.spec.dump());
          what.push_back(ptr + " = " + std::to_string(bad));
        }
      }
    }
  }
  Verdicts v = validate(texts);
  if (!v.skip.empty()) GTEST_SKIP() << v.skip;
  for (size_t i = 0; i < texts.size(); ++i) EXPECT_NE(v.lines[i], "ok") << what[i] << ": " << texts[i];
}

TEST(Schema, CheckAcceptsDollarSchema) {
  Spec spec = parse_spec(R"({"$schema": "asmsrv.schema.json", "response": {}})", "s.json");
  EXPECT_EQ(spec.port, 8080);
  try {
    parse_spec(R"({"$schema": 1, "response": {}})", "s.json");
    ADD_FAILURE() << "a number as $schema is accepted";
  } catch (const SpecError& e) {
    EXPECT_EQ(std::string(e.what()), "s.json: /$schema: expected a string, got 1");
  }
  // "$schema" is never offered as a typo's fix or in the list of keys.
  try {
    parse_spec(R"({"response": {}, "schema": 1})", "s.json");
    ADD_FAILURE();
  } catch (const SpecError& e) {
    EXPECT_EQ(std::string(e.what()).find("$schema"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace asmsrv::test
