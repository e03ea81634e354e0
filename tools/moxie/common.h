// Helpers shared by the subcommands: argument parsing and error reporting.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "models/model.h"

namespace moxie::cli {

// Prints "moxie: error: <message>" to stderr and returns 1.
int Fail(const Status& s);
// Parses "1,2,3" (spaces allowed) into token ids.
Result<std::vector<int32_t>> ParseTokenList(const std::string& s, const std::string& flag);

}  // namespace moxie::cli
