// `moxie` subcommands. Each Register* adds one subcommand to the CLI11 app; the callback returns
// the process exit code through `*rc`.
#pragma once

#include <CLI/CLI.hpp>

namespace moxie::cli {

void RegisterInfo(CLI::App& app, int* rc);
void RegisterLogits(CLI::App& app, int* rc);
void RegisterGenerate(CLI::App& app, int* rc);
void RegisterTokenize(CLI::App& app, int* rc);
void RegisterDetokenize(CLI::App& app, int* rc);
void RegisterRun(CLI::App& app, int* rc);
void RegisterTemplate(CLI::App& app, int* rc);
void RegisterChat(CLI::App& app, int* rc);
void RegisterPerplexity(CLI::App& app, int* rc);
void RegisterQuantize(CLI::App& app, int* rc);
void RegisterSynth(CLI::App& app, int* rc);
void RegisterBench(CLI::App& app, int* rc);
void RegisterServe(CLI::App& app, int* rc);

}  // namespace moxie::cli
