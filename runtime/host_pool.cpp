#include "runtime/host_pool.h"

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

}  // namespace opal
