// The emulator's device memory and streams: host allocations remembered with their device, so
// that copies, frees and pointer queries can tell device memory from host memory as CUDA does;
// streams remembered after they are destroyed, so that a use after that is an error.
#pragma once
#include <cstddef>

namespace opal::emu {

void* allocate(size_t bytes, int device);     // 256-byte aligned, not zeroed (as cudaMalloc)
bool deallocate(void* p);                     // false: not a pointer allocate returned
bool is_device(const void* p, size_t bytes);  // [p, p + bytes) lies in one allocation
int device_of(const void* p);                 // the allocation's device, or -1 (host memory)
bool stream_alive(const void* stream);        // the default streams, or one created and not destroyed

}  // namespace opal::emu
