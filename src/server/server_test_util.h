// Shared by the server's unit tests (one test binary).
#pragma once

#include "formats/tokenizer.h"

namespace moxie::server::testing {

// The demo model's tokenizer, loaded once and kept for the whole run; nullptr if it cannot load.
inline const Tokenizer* DemoTokenizer() {
  static const Tokenizer* tok = []() -> const Tokenizer* {
    auto t = Tokenizer::FromPath(MOXIE_DEMO_MODEL_DIR);
    return t.ok() ? t->release() : nullptr;
  }();
  return tok;
}

}  // namespace moxie::server::testing
