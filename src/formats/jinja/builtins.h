// Filters, tests, globals and the Python methods of str/dict/list (internal to src/formats/jinja/).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "formats/jinja/interp.h"
#include "formats/jinja/value.h"

namespace moxie::jinja {

// A bound method of `obj` (e.g. "abc".startswith), or an Undefined when `obj` has none by that name.
Value GetMethod(const Value& obj, const std::string& name);

// obj[start:stop:step] for lists, tuples and strings, with Python's index clamping.
Value SliceValue(const Value& obj, std::optional<int64_t> start, std::optional<int64_t> stop,
                 std::optional<int64_t> step);
Value Repeat(Interp& in, const Value& seq, int64_t n);           // seq * n
Value PercentFormat(const std::string& fmt, const Value& args);  // fmt % args
// Python ordering (<): sets *out to -1/0/1; false when the types are not orderable.
bool PyCompare(const Value& a, const Value& b, int* out);

// Adds range, namespace, dict, raise_exception, strftime_now, cycler-free jinja2 globals.
void AddGlobals(Scope& scope);

// Binds Python-style call arguments to parameter names; unset optional parameters are nullopt.
std::vector<std::optional<Value>> BindArgs(const std::string& fn, CallArgs& args,
                                           std::initializer_list<std::string_view> names,
                                           size_t required = 0);

}  // namespace moxie::jinja
