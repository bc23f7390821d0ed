#include "schema.h"

#include <nlohmann/json.hpp>
#include <string_view>

#include "spec_keys.h"

namespace asmsrv {

namespace {

using json = nlohmann::ordered_json;

std::string ref(std::string_view object) { return "#/$defs/" + std::string(object); }

// RFC 9110 5.6.2: a header name is a token.
constexpr const char* kTokenPattern = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";

json key_schema(const KeySpec& k) {
  json s = json::object();
  switch (k.type) {
    case KeyType::string:
      if (k.nullable) s["type"] = json::array({"string", "null"});
      else s["type"] = "string";
      if (!k.pattern.empty()) s["pattern"] = k.pattern;
      break;
    case KeyType::integer:
      s["type"] = "integer";
      s["minimum"] = k.min;
      s["maximum"] = k.max;
      break;
    case KeyType::boolean: s["type"] = "boolean"; break;
    case KeyType::choice:
      s["enum"] = json::array();
      for (std::string_view c : k.choices) s["enum"].push_back(c);
      break;
    case KeyType::choices:
      s["type"] = "array";
      s["minItems"] = 1;
      s["uniqueItems"] = true;
      s["items"] = {{"enum", json::array()}};
      for (std::string_view c : k.choices) s["items"]["enum"].push_back(c);
      break;
    case KeyType::object: s["$ref"] = ref(k.object); break;
    case KeyType::array:
      s["type"] = "array";
      s["minItems"] = 1;
      s["items"] = {{"$ref", ref(k.object)}};
      break;
    case KeyType::headers:
      s["type"] = "object";
      s["propertyNames"] = {{"pattern", kTokenPattern}};
      s["additionalProperties"] = {{"type", "string"}};
      break;
    case KeyType::text_map:
      s["type"] = "object";
      s["propertyNames"] = {{"minLength", 1}};
      s["additionalProperties"] = {{"type", "string"}};
      break;
    case KeyType::annotation: s["type"] = "string"; break;
  }
  s["description"] = k.description;
  return s;
}

// An object of the table; a route's properties include the response's, and
// its constraints too.
json object_schema(const ObjectSpec& o) {
  json s = {{"type", "object"}, {"description", o.description}};
  json props = json::object();
  for (const KeySpec* k : o.all_keys()) props[std::string(k->name)] = key_schema(*k);
  s["properties"] = props;
  s["additionalProperties"] = false;
  if (!o.required.empty()) {
    s["required"] = json::array();
    for (std::string_view k : o.required) s["required"].push_back(k);
  }
  std::vector<const ObjectSpec*> chain = {&o};
  if (!o.base.empty()) chain.push_back(&spec_object(o.base));
  json all = json::array();
  for (const ObjectSpec* c : chain) {
    if (!c->exactly_one.empty()) {
      json one = json::array();
      for (const auto& keys : c->exactly_one) {
        json any = json::array();
        for (std::string_view k : keys) any.push_back({{"required", json::array({k})}});
        one.push_back(any.size() == 1 ? any[0] : json{{"anyOf", any}});
      }
      s["oneOf"] = one;
    }
    const auto& few = c->at_most_one;
    for (size_t i = 0; i < few.size(); ++i)
      for (size_t j = i + 1; j < few.size(); ++j) all.push_back({{"not", {{"required", json::array({few[i], few[j]})}}}});
  }
  if (!all.empty()) s["allOf"] = all;
  return s;
}

}  // namespace

std::string spec_schema() {
  const ObjectSpec& root = spec_object("");
  json s = {{"$schema", kJsonSchemaDialect}, {"title", "asmsrv spec"}};
  const json top = object_schema(root);
  for (const auto& [key, value] : top.items()) s[key] = value;
  json defs = json::object();
  for (const ObjectSpec& o : spec_objects())
    if (!o.name.empty()) defs[std::string(o.name)] = object_schema(o);
  s["$defs"] = defs;
  return s.dump(2) + "\n";
}

}  // namespace asmsrv
