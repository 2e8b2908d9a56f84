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

ForkedChildSerial::ForkedChildSerial() {
  if (host_pool_usable()) return;
  saved_ = omp_get_max_threads();
  omp_set_num_threads(1);
}

ForkedChildSerial::~ForkedChildSerial() {
  if (saved_ > 0) omp_set_num_threads(saved_);
}

}  // namespace opal
