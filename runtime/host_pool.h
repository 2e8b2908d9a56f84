// The host thread pool (OpenMP) across fork(): libgomp's worker threads do not survive it, so a
// parallel region of more than one thread in a child forked from a process that ran one waits
// for them forever. In such a child the runtime's own host loops (conversions, copies: what a
// save reads) run on the calling thread, and so does everything a step runs (the generated
// kernels and Eigen's products): ForkedChildSerial sets the calling thread's OpenMP team size
// to one for its lifetime. A trainer that forks to write a checkpoint, or a sweep forking its
// trials from a process that stepped, keeps working, on one thread in the child.
#pragma once

namespace opal {

// False in a process forked from one that had loaded Opal (pthread_atfork).
bool host_pool_usable();

// In a forked child, one thread for the OpenMP regions the calling thread opens while this
// lives (the kernels' `omp parallel`, Eigen's): the thread's team size is restored on exit.
// Nothing anywhere else. `set` and `get` are the OpenMP runtime's omp_set_num_threads and
// omp_get_max_threads: by default the one Opal was built with; for the generated kernels, the
// one they load (runtime/cpu/cpu_backend.cpp: the host compiler's, which may be another: a
// runtime built by clang on libomp, kernels by g++ on libgomp).
class ForkedChildSerial {
 public:
  using SetThreads = void (*)(int);
  using GetThreads = int (*)();
  ForkedChildSerial();
  ForkedChildSerial(SetThreads set, GetThreads get);
  ~ForkedChildSerial();
  ForkedChildSerial(const ForkedChildSerial&) = delete;
  ForkedChildSerial& operator=(const ForkedChildSerial&) = delete;

 private:
  SetThreads set_ = nullptr;
  int saved_ = 0;  // the team size to restore; 0 outside a forked child
};

}  // namespace opal
