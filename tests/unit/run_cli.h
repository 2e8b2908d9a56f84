// Runs the `opal` binary (OPAL_BINARY) with arguments; returns (exit code, stdout+stderr).
// cli_fails: the same, checking that it fails (exit 1) saying each of some words.
#pragma once
#include <sys/wait.h>

#include <cstdio>
#include <string>
#include <initializer_list>
#include <utility>

#include <doctest/doctest.h>

inline std::pair<int, std::string> run_cli(const std::string& args) {
  std::string cmd = std::string(OPAL_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int rc = pclose(p);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc), out};
}

// `opal ARGS` exits 1 with every one of `words` in its output.
inline void cli_fails(const std::string& args, std::initializer_list<const char*> words) {
  auto res = run_cli(args);
  std::string out = res.second;
  CAPTURE(args);
  CAPTURE(out);
  CHECK(res.first == 1);
  for (const char* w : words) CHECK(out.find(w) != std::string::npos);
}
