// moxie: the command-line front end.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "tools/moxie/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"moxie: a Mixture-of-Experts inference engine"};
  app.require_subcommand(1);
  int rc = 0;
  moxie::cli::RegisterInfo(app, &rc);
  moxie::cli::RegisterLogits(app, &rc);
  moxie::cli::RegisterGenerate(app, &rc);
  moxie::cli::RegisterRun(app, &rc);
  moxie::cli::RegisterChat(app, &rc);
  moxie::cli::RegisterTemplate(app, &rc);
  moxie::cli::RegisterPerplexity(app, &rc);
  moxie::cli::RegisterQuantize(app, &rc);
  moxie::cli::RegisterSynth(app, &rc);
  moxie::cli::RegisterBench(app, &rc);
  moxie::cli::RegisterServe(app, &rc);
  moxie::cli::RegisterTokenize(app, &rc);
  moxie::cli::RegisterDetokenize(app, &rc);
  if (argc > 1 && argv[1][0] != '-') {
    const std::string cmd = argv[1];
    bool known = false;
    std::string names;
    for (const auto* sub : app.get_subcommands({})) {
      known |= sub->get_name() == cmd;
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    if (!known) {
      std::fprintf(stderr, "moxie: error: unknown command '%s' (commands: %s; see --help)\n",
                   cmd.c_str(), names.c_str());
      return 2;
    }
  }
  CLI11_PARSE(app, argc, argv);
  return rc;
}
