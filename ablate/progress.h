// The ablation's progress line on stderr: runs done of those planned so far, from the journal,
// elapsed time and an estimate of the rest (sweeps may still grow past their edges).
#pragma once
#include <chrono>

namespace opal {

void print_progress(int done, int planned, int executed, int from_journal, std::chrono::steady_clock::time_point start);

}  // namespace opal
