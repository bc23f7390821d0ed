// The spec's keys, object by object: one table that both the checker
// (spec.cc) and `asmsrv schema` (schema.cc) read. A key added here is what
// makes the checker accept it and the schema list it; the checker then
// reads the key's range and choices from its row.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace asmsrv {

enum class KeyType {
  string,
  integer,    // from min to max
  boolean,
  choice,     // one of `choices`
  choices,    // a non-empty array of distinct `choices`
  object,     // the object named `object`
  array,      // a non-empty array of the object named `object`
  headers,    // an object of header names to values
  text_map,   // an object of any names (patterns) to strings
  annotation, // accepted and ignored ("$schema"); never suggested
};

struct KeySpec {
  std::string_view name = {};
  KeyType type = KeyType::string;
  std::string_view description = {};  // one line, for the schema
  int64_t min = 0, max = 0;               // integer
  std::vector<std::string_view> choices = {};  // choice
  std::string_view object = {};           // object, array
  bool nullable = false;                  // null is also accepted (string)
  std::string_view pattern = {};          // string: a regex the checker's rule implies
};

struct ObjectSpec {
  std::string_view name = {};     // "" for the root; else a $defs name
  std::string_view description = {};
  std::vector<KeySpec> keys = {}; // in the order "valid keys here" lists them
  std::string_view base = {};     // keys of this object follow `keys` (a route is a response)
  std::vector<std::string_view> required = {};
  /// Exactly one of these alternatives is given; an alternative is one key,
  /// or keys that go together (any of them: "routes" and/or "static").
  std::vector<std::vector<std::string_view>> exactly_one = {};
  std::vector<std::string_view> at_most_one = {};  // not two of these keys together

  /// The row of `key`; throws std::logic_error when the table has none.
  const KeySpec& key(std::string_view key) const;
  /// Every key a spec may give here, own keys first, then the base's.
  std::vector<const KeySpec*> all_keys() const;
  /// The keys offered in "did you mean" and "valid keys here" (no annotations).
  std::vector<std::string_view> listed() const;
  /// True when `key` may be given here (annotations too).
  bool accepts(std::string_view key) const;
  /// True when `key` is one of the exactly_one alternatives' keys.
  bool alternative(std::string_view key) const;
};

/// Every object of the spec, the root first.
const std::vector<ObjectSpec>& spec_objects();
/// The object named `name` ("" for the root); throws std::logic_error when none is.
const ObjectSpec& spec_object(std::string_view name);

}  // namespace asmsrv
