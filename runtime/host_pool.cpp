#include "runtime/host_pool.h"

#include <omp.h>
#include <pthread.h>

namespace opal {

namespace {

bool forked = false;  // set in the child, alone on its one thread then
void on_fork_child() { forked = true; }
const int registered = pthread_atfork(nullptr, nullptr, on_fork_child);

}  // namespace

bool host_pool_usable() {
  (void)registered;
  return !forked;
}

ForkedChildSerial::ForkedChildSerial() : ForkedChildSerial(omp_set_num_threads, omp_get_max_threads) {}

ForkedChildSerial::ForkedChildSerial(SetThreads set, GetThreads get) {
  if (host_pool_usable() || !set || !get) return;
  set_ = set;
  saved_ = get();
  set(1);
}

ForkedChildSerial::~ForkedChildSerial() {
  if (saved_ > 0) set_(saved_);
}

}  // namespace opal
