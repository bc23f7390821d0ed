// `asmsrv schema`: a JSON Schema (2020-12) of the spec, made from the key
// table the checker reads (spec_keys.h), so that the two cannot disagree
// on which keys exist, their types, ranges and choices.
#pragma once

#include <string>

namespace asmsrv {

/// Where a spec's "$schema" may point; also the schema's "$schema".
inline constexpr const char* kJsonSchemaDialect = "https://json-schema.org/draft/2020-12/schema";

/// The schema as JSON text, indented by 2, ending in a newline; the same
/// bytes every time.
std::string spec_schema();

}  // namespace asmsrv
