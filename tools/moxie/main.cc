// moxie: the command-line front end.
#include <CLI/CLI.hpp>

#include "tools/moxie/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"moxie: a Mixture-of-Experts inference engine"};
  app.require_subcommand(1);
  int rc = 0;
  moxie::cli::RegisterInfo(app, &rc);
  moxie::cli::RegisterLogits(app, &rc);
  moxie::cli::RegisterGenerate(app, &rc);
  CLI11_PARSE(app, argc, argv);
  return rc;
}
