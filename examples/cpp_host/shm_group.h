// The example host's stand-in for a collective library (a real host uses its own: NCCL, MPI,
// gloo): the processes of one machine, RANK 0 .. WORLD_SIZE-1 as torchrun numbers them, meet in
// a POSIX shared-memory segment named after MASTER_PORT. Each rank has a slot of the segment;
// a barrier with a deadline ends every wait, so a rank that dies makes the others fail with a
// message instead of hanging. Opal itself never sees any of this: it only says, through
// opal_get_exchange, what to move between the phases of a step.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

class ShmGroup {
 public:
  // Every rank opens the same segment (rank 0 makes it); `slot_bytes` per rank, the same on all.
  ShmGroup(int rank, int world, const std::string& port, size_t slot_bytes, double timeout_s)
      : rank_(rank), world_(world), name_("/opal_cpp_host_" + port), slot_(slot_bytes), timeout_(timeout_s) {
    bytes_ = sizeof(Header) + size_t(world) * slot_bytes;
    int fd = -1;
    if (rank == 0) {
      shm_unlink(name_.c_str());  // a segment a crashed run left
      fd = shm_open(name_.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
      if (fd < 0 || ftruncate(fd, off_t(bytes_)) != 0) fail("cannot create the shared segment " + name_);
    } else {
      const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_);
      while ((fd = shm_open(name_.c_str(), O_RDWR, 0600)) < 0 || size_of(fd) < bytes_) {
        if (fd >= 0) close(fd);
        if (std::chrono::steady_clock::now() > until) fail("rank 0 did not create the shared segment " + name_ + " in time");
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) fail("cannot map the shared segment " + name_);
    base_ = static_cast<char*>(p);
    h_ = reinterpret_cast<Header*>(base_);
    if (rank == 0) {
      new (h_) Header{};
      h_->ready.store(1);
    } else {
      wait_for([&] { return h_->ready.load() == 1; }, "the shared segment to be ready");
    }
    barrier("joining the group");
  }
  ~ShmGroup() {
    munmap(base_, bytes_);
    if (rank_ == 0) shm_unlink(name_.c_str());
  }
  int rank() const { return rank_; }
  int world() const { return world_; }
  char* slot(int r) { return base_ + sizeof(Header) + size_t(r) * slot_; }

  // Every rank waits here until all arrive (or the deadline passes: exit 3, naming `what`).
  void barrier(const char* what) {
    const int gen = h_->generation.load();
    if (h_->arrived.fetch_add(1) + 1 == world_) {
      h_->arrived.store(0);
      h_->generation.fetch_add(1);
      return;
    }
    wait_for([&] { return h_->generation.load() != gen; }, what);
  }
  // Each rank's n bytes, all ranks' in rank order into `out` (world * n bytes).
  void all_gather(const void* mine, size_t n, void* out, const char* what) {
    need(n);
    std::memcpy(slot(rank_), mine, n);
    barrier(what);
    for (int r = 0; r < world_; ++r) std::memcpy(static_cast<char*>(out) + size_t(r) * n, slot(r), n);
    barrier(what);
  }
  // Rank `to` receives each rank's `n[r]` bytes at `out + at[r]`.
  void gather(const void* mine, size_t n, int to, void* out, const std::vector<size_t>& at, const std::vector<size_t>& sizes, const char* what) {
    need(n);
    std::memcpy(slot(rank_), mine, n);
    barrier(what);
    if (rank_ == to)
      for (int r = 0; r < world_; ++r) std::memcpy(static_cast<char*>(out) + at[size_t(r)], slot(r), sizes[size_t(r)]);
    barrier(what);
  }
  // Rank `from`'s `n` bytes; each rank copies `len` of them from `offset` into `mine`.
  void scatter(const void* whole, size_t n, int from, void* mine, size_t offset, size_t len, const char* what) {
    if (rank_ == from) {
      need(n);
      std::memcpy(slot(from), whole, n);
    }
    barrier(what);
    std::memcpy(mine, slot(from) + offset, len);
    barrier(what);
  }

 private:
  struct Header {
    std::atomic<int> ready{0}, arrived{0}, generation{0};
  };
  static size_t size_of(int fd) {
    const off_t end = lseek(fd, 0, SEEK_END);
    return end < 0 ? 0 : size_t(end);
  }
  [[noreturn]] void fail(const std::string& what) const {
    std::fprintf(stderr, "opal_cpp_host: rank %d: %s\n", rank_, what.c_str());
    std::exit(3);
  }
  void need(size_t n) const {
    if (n > slot_) fail("a message of " + std::to_string(n) + " bytes exceeds the group's slot of " + std::to_string(slot_));
  }
  template <class F>
  void wait_for(F done, const char* what) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_);
    while (!done()) {
      if (std::chrono::steady_clock::now() > until)
        fail(std::string("the other ranks did not arrive at ") + what + " within " + std::to_string(int(timeout_)) + " s: a rank died or hangs");
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }
  int rank_, world_;
  std::string name_;
  size_t slot_, bytes_ = 0;
  double timeout_;
  char* base_ = nullptr;
  Header* h_ = nullptr;
};
