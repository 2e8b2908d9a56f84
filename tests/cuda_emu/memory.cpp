// The emulator's device memory (memory.h).
#include "tests/cuda_emu/memory.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>

namespace opal::emu {

namespace {

struct Allocation {
  size_t bytes;
  int device;
};
std::mutex mu;
std::map<uintptr_t, Allocation> allocations;

// The allocation holding p, or end().
std::map<uintptr_t, Allocation>::const_iterator holder(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  auto it = allocations.upper_bound(a);
  if (it == allocations.begin()) return allocations.end();
  --it;
  return a < it->first + std::max<size_t>(it->second.bytes, 1) ? it : allocations.end();
}

}  // namespace

void* allocate(size_t bytes, int device) {
  void* p = std::aligned_alloc(256, (std::max<size_t>(bytes, 1) + 255) / 256 * 256);
  if (!p) return nullptr;
  std::lock_guard<std::mutex> lock(mu);
  allocations[reinterpret_cast<uintptr_t>(p)] = {bytes, device};
  return p;
}

bool deallocate(void* p) {
  std::lock_guard<std::mutex> lock(mu);
  auto it = allocations.find(reinterpret_cast<uintptr_t>(p));
  if (it == allocations.end()) return false;
  allocations.erase(it);
  std::free(p);
  return true;
}

bool is_device(const void* p, size_t bytes) {
  std::lock_guard<std::mutex> lock(mu);
  auto it = holder(p);
  return it != allocations.end() && reinterpret_cast<uintptr_t>(p) + bytes <= it->first + it->second.bytes;
}

int device_of(const void* p) {
  std::lock_guard<std::mutex> lock(mu);
  auto it = holder(p);
  return it == allocations.end() ? -1 : it->second.device;
}

}  // namespace opal::emu
