// The host thread pool (OpenMP) across fork(): libgomp's worker threads do not survive it, so a
// parallel region in a child forked from a process that ran one waits for them forever. The
// runtime's own host loops (conversions, copies: what a save reads) ask here and run on the
// calling thread in such a child, as a process that forks to write a checkpoint needs. The
// generated kernels do not: a step in a forked child still needs a pool of its own (exec).
#pragma once

namespace opal {

// False in a process forked from one that had loaded Opal (pthread_atfork).
bool host_pool_usable();

}  // namespace opal
